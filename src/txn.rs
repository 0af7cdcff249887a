//! One transaction runner for every change lbctl makes, whatever the object: addresses, rules,
//! routes, sysctls, nft tables, IPVS services and destinations.
//!
//! A [`Step`] prints as the command a sysadmin would type and knows the steps that undo it; an
//! [`Executor`] performs steps against the kernel (or, in unit tests, an in-memory fake). [`run`]
//! applies the steps in order and, when step k fails, undoes steps k-1…0 in reverse order; the
//! caller's verification then observes the result and, on a mismatch, everything is undone.
//! This is the only place with the failure-injection hook, the rollback loop and the rollback
//! report, so every command reports a failure in the same words.

use std::fmt;

/// `LBCTL_FAIL_ON=TEXT`: the first step whose command line contains TEXT fails (forward
/// direction only, never during rollback). A test hook, used by the namespace and VM tests.
pub const FAIL_ON_ENV: &str = "LBCTL_FAIL_ON";

/// A change that can be printed and undone.
pub trait Step: fmt::Display + Sized {
    /// The steps that undo this one, applied in order.
    fn undo(&self) -> Vec<Self>;

    /// The command lines this step prints (a step may need more than one command).
    fn lines(&self) -> Vec<String> {
        self.to_string().lines().map(str::to_string).collect()
    }
}

/// Performs steps.
pub trait Executor<S: Step> {
    type Error: fmt::Display;
    fn exec(&mut self, step: &S) -> Result<(), Self::Error>;

    /// How many steps from the start of `steps` this executor performs as one batch, with many
    /// in flight at once ([`Executor::exec_batch`]); 1 means one step at a time. Only steps
    /// that do not depend on each other may share a batch (e.g. distinct addresses).
    fn batch_len(&self, steps: &[S]) -> usize {
        let _ = steps;
        1
    }

    /// Perform `steps` (a run [`Executor::batch_len`] accepted), possibly many at once.
    /// `issue(k)` is asked right before step k starts: when it says false (a stop request), no
    /// further step starts. With `stop_on_error`, no step starts after one has failed. Steps
    /// already started always finish and report. Returns one entry per step: `None` where the
    /// step never started.
    fn exec_batch(
        &mut self,
        steps: &[S],
        issue: &mut dyn FnMut(usize) -> bool,
        stop_on_error: bool,
    ) -> Vec<Option<Result<(), Self::Error>>> {
        exec_each(self, steps, issue, stop_on_error)
    }
}

/// [`Executor::exec_batch`] one step at a time: what an executor without pipelining does.
pub fn exec_each<S: Step, X: Executor<S> + ?Sized>(
    x: &mut X,
    steps: &[S],
    issue: &mut dyn FnMut(usize) -> bool,
    stop_on_error: bool,
) -> Vec<Option<Result<(), X::Error>>> {
    let mut out: Vec<Option<Result<(), X::Error>>> = Vec::with_capacity(steps.len());
    for (k, s) in steps.iter().enumerate() {
        if !issue(k) {
            break;
        }
        let r = x.exec(s);
        let failed = r.is_err();
        out.push(Some(r));
        if failed && stop_on_error {
            break;
        }
    }
    out.resize_with(steps.len(), || None);
    out
}

/// Why a step failed.
#[derive(Debug)]
pub enum Cause<E> {
    /// The executor's own error.
    Exec(E),
    /// [`FAIL_ON_ENV`] matched the step.
    Injected(String),
}

impl<E: fmt::Display> fmt::Display for Cause<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Exec(e) => write!(f, "{e}"),
            Cause::Injected(k) => write!(f, "injected failure ({FAIL_ON_ENV}={k})"),
        }
    }
}

/// A failed transaction; the rollback has been attempted in every case.
#[derive(Debug)]
pub enum TxnError<E> {
    /// Step `index` (0-based) of `total` failed; the `applied` steps that had succeeded (those
    /// before it, and in a batch also others that were in flight) were undone.
    Apply {
        /// What was changed, for the report ("IPVS", "the system").
        subject: &'static str,
        index: usize,
        total: usize,
        applied: usize,
        /// The failed step's command line.
        change: String,
        cause: Box<Cause<E>>,
        rollback_failures: Vec<String>,
    },
    /// A stop was requested (SIGINT/SIGTERM) before step `index`; steps 0…index-1 were undone
    /// — unless a second request cut the rollback short (`rollback_aborted`).
    Interrupted {
        subject: &'static str,
        index: usize,
        total: usize,
        rollback_failures: Vec<String>,
        /// Undo steps left undone because a second stop request aborted the rollback.
        rollback_aborted: Vec<String>,
    },
    /// Everything applied, but observing again did not show the expected result.
    Verify {
        subject: &'static str,
        problems: Vec<String>,
        rollback_failures: Vec<String>,
    },
}

impl<E> TxnError<E> {
    /// The executor's error, when a step failed in the executor (not injected, not verify).
    pub fn exec_error(&self) -> Option<&E> {
        match self {
            TxnError::Apply { cause, .. } => match &**cause {
                Cause::Exec(e) => Some(e),
                Cause::Injected(_) => None,
            },
            TxnError::Verify { .. } | TxnError::Interrupted { .. } => None,
        }
    }

    pub fn is_interrupted(&self) -> bool {
        matches!(self, TxnError::Interrupted { .. })
    }
}

fn rollback_summary(subject: &str, applied: &str, failures: &[String]) -> String {
    if failures.is_empty() {
        format!("rolled back {applied} applied change(s); {subject} is as before")
    } else {
        let mut s = format!(
            "rollback incomplete ({} undo step(s) failed):",
            failures.len()
        );
        for f in failures {
            s.push_str(&format!("\n  {f}"));
        }
        s
    }
}

impl<E: fmt::Display> fmt::Display for TxnError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TxnError::Apply {
                subject,
                index,
                total,
                applied,
                change,
                cause,
                rollback_failures,
            } => write!(
                f,
                "change {} of {total} failed: {change}\n  {}\n{}",
                index + 1,
                cause.to_string().replace('\n', "\n  "),
                rollback_summary(subject, &applied.to_string(), rollback_failures)
            ),
            TxnError::Interrupted {
                subject,
                index,
                total,
                rollback_failures,
                rollback_aborted,
            } => {
                write!(f, "interrupted before change {} of {total}; ", index + 1)?;
                if rollback_aborted.is_empty() {
                    write!(
                        f,
                        "{}",
                        rollback_summary(subject, &index.to_string(), rollback_failures)
                    )
                } else {
                    write!(
                        f,
                        "the rollback was aborted by a second signal; {} undo step(s) not done \
                         (`lbctl status` shows what remains):\n  {}",
                        rollback_aborted.len(),
                        rollback_aborted.join("\n  ")
                    )
                }
            }
            TxnError::Verify {
                subject,
                problems,
                rollback_failures,
            } => write!(
                f,
                "verification failed: {subject} does not show the expected result:\n  {}\n{}",
                problems.join("\n  "),
                rollback_summary(subject, "all", rollback_failures)
            ),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for TxnError<E> {}

/// Undo `applied` in reverse order, continuing past errors; returns the failures.
pub fn rollback<S: Step, X: Executor<S>>(
    x: &mut X,
    applied: &[S],
    detail: &dyn Fn(&str),
) -> Vec<String> {
    undo_all(x, applied.iter(), detail, &|| 0).0
}

/// Undo `applied` (in the order they were applied) in reverse order, continuing past errors,
/// but stop as soon as `stops()` reaches 2 (a second SIGINT/SIGTERM). Undo steps that can go
/// together (the executor's [`Executor::batch_len`]) are performed as one batch. Returns
/// (failures, undo steps not done).
fn undo_all<'a, S: Step + 'a, X: Executor<S>>(
    x: &mut X,
    applied: impl DoubleEndedIterator<Item = &'a S>,
    detail: &dyn Fn(&str),
    stops: &dyn Fn() -> u32,
) -> (Vec<String>, Vec<String>) {
    let mut failures = Vec::new();
    let undo: Vec<S> = applied.rev().flat_map(|s| s.undo()).collect();
    let failed = |u: &S, e: &X::Error| format!("{u}: {}", e.to_string().replace('\n', " "));
    let mut i = 0;
    while i < undo.len() {
        if stops() >= 2 {
            return (failures, undo[i..].iter().map(|u| u.to_string()).collect());
        }
        let n = x.batch_len(&undo[i..]).clamp(1, undo.len() - i);
        let batch = &undo[i..i + n];
        if n == 1 {
            detail(&format!("rolling back: {}", batch[0]));
            if let Err(e) = x.exec(&batch[0]) {
                failures.push(failed(&batch[0], &e));
            }
            i += 1;
            continue;
        }
        let results = x.exec_batch(
            batch,
            &mut |k| {
                if stops() >= 2 {
                    return false;
                }
                detail(&format!("rolling back: {}", batch[k]));
                true
            },
            false,
        );
        let mut not_done = Vec::new();
        for (u, r) in batch.iter().zip(results) {
            match r {
                Some(Ok(())) => {}
                Some(Err(e)) => failures.push(failed(u, &e)),
                None => not_done.push(u.to_string()),
            }
        }
        i += n;
        if !not_done.is_empty() {
            not_done.extend(undo[i..].iter().map(|u| u.to_string()));
            return (failures, not_done);
        }
    }
    (failures, Vec::new())
}

/// Apply `steps` in order; on failure undo the applied prefix in reverse order. Then call
/// `verify`, which observes the result and returns what differs from the expectation; when
/// anything does, undo every step. `progress` is called once per step applied.
pub fn run<S: Step, X: Executor<S>>(
    subject: &'static str,
    x: &mut X,
    steps: &[S],
    detail: &dyn Fn(&str),
    progress: &dyn Fn(),
    verify: impl FnOnce(&mut X) -> Vec<String>,
) -> Result<(), TxnError<X::Error>> {
    run_interruptible(subject, x, steps, detail, progress, &|| 0, verify)
}

/// [`run`], asking `stops()` — how many stop requests (SIGINT/SIGTERM) arrived since the
/// transaction began — before each step: at 1 the applied steps are undone and
/// [`TxnError::Interrupted`] returned; at 2, during that rollback, the rollback stops too.
///
/// Runs of steps the executor can pipeline ([`Executor::batch_len`]) go as one batch, with the
/// same guarantees: a stop request starts no further step, the steps already in flight finish,
/// and everything that succeeded is undone; when a step of the batch fails, no further step
/// starts, the first failed step (in plan order) is reported, and every step that succeeded —
/// before it or, in flight at the time, after it — is undone.
pub fn run_interruptible<S: Step, X: Executor<S>>(
    subject: &'static str,
    x: &mut X,
    steps: &[S],
    detail: &dyn Fn(&str),
    progress: &dyn Fn(),
    stops: &dyn Fn() -> u32,
    verify: impl FnOnce(&mut X) -> Vec<String>,
) -> Result<(), TxnError<X::Error>> {
    let fail_on = std::env::var(FAIL_ON_ENV).unwrap_or_default();
    let injected = |s: &S| !fail_on.is_empty() && s.lines().iter().any(|l| l.contains(&fail_on));
    // Indices of the steps applied so far, in the order applied.
    let mut applied: Vec<usize> = Vec::new();
    let done = |applied: &[usize]| applied.iter().map(|&k| &steps[k]).collect::<Vec<&S>>();
    let mut i = 0;
    while i < steps.len() {
        if stops() > 0 {
            let (rollback_failures, rollback_aborted) =
                undo_all(x, done(&applied).into_iter(), detail, stops);
            return Err(TxnError::Interrupted {
                subject,
                index: i,
                total: steps.len(),
                rollback_failures,
                rollback_aborted,
            });
        }
        let mut n = x.batch_len(&steps[i..]).clamp(1, steps.len() - i);
        // An injected failure keeps its exact place: the batch ends before that step.
        if let Some(k) = steps[i..i + n].iter().position(&injected) {
            n = k.max(1);
        }
        if n == 1 {
            let s = &steps[i];
            progress();
            detail(&format!("applying: {s}"));
            let r = if injected(s) {
                Err(Cause::Injected(fail_on.clone()))
            } else {
                x.exec(s).map_err(Cause::Exec)
            };
            if let Err(cause) = r {
                let rollback_failures = undo_all(x, done(&applied).into_iter(), detail, &|| 0).0;
                return Err(TxnError::Apply {
                    subject,
                    index: i,
                    total: steps.len(),
                    applied: applied.len(),
                    change: s.to_string(),
                    cause: Box::new(cause),
                    rollback_failures,
                });
            }
            applied.push(i);
            i += 1;
            continue;
        }
        let batch = &steps[i..i + n];
        let results = x.exec_batch(
            batch,
            &mut |k| {
                if stops() > 0 {
                    return false;
                }
                progress();
                detail(&format!("applying: {}", batch[k]));
                true
            },
            true,
        );
        let mut first_error = None;
        let mut not_started = None;
        for (k, r) in results.into_iter().enumerate() {
            match r {
                Some(Ok(())) => applied.push(i + k),
                Some(Err(e)) if first_error.is_none() => first_error = Some((i + k, e)),
                Some(Err(_)) => {}
                None if not_started.is_none() => not_started = Some(i + k),
                None => {}
            }
        }
        if let Some((index, e)) = first_error {
            let rollback_failures = undo_all(x, done(&applied).into_iter(), detail, &|| 0).0;
            return Err(TxnError::Apply {
                subject,
                index,
                total: steps.len(),
                applied: applied.len(),
                change: steps[index].to_string(),
                cause: Box::new(Cause::Exec(e)),
                rollback_failures,
            });
        }
        match not_started {
            // Stopped part-way: the loop's stop check undoes what was applied.
            Some(k) => i = k,
            None => i += n,
        }
    }
    let problems = verify(x);
    if problems.is_empty() {
        return Ok(());
    }
    let rollback_failures = undo_all(x, steps.iter(), detail, &|| 0).0;
    Err(TxnError::Verify {
        subject,
        problems,
        rollback_failures,
    })
}

#[cfg(test)]
mod tests {
    //! The transaction runner against an in-memory store of keyed values, with every kind of
    //! step (create, delete, replace) and failures at every position.

    use std::collections::BTreeMap;

    use super::*;

    /// A keyed store: the shape every lbctl resource has (a key and a value).
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Op {
        Create(&'static str, u32),
        Delete(&'static str, u32),
        Replace(&'static str, u32, u32),
    }

    impl fmt::Display for Op {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                Op::Create(k, v) => write!(f, "create {k}={v}"),
                Op::Delete(k, v) => write!(f, "delete {k}={v}"),
                Op::Replace(k, a, b) => write!(f, "replace {k}={a} with {b}"),
            }
        }
    }

    impl Step for Op {
        fn undo(&self) -> Vec<Op> {
            vec![match *self {
                Op::Create(k, v) => Op::Delete(k, v),
                Op::Delete(k, v) => Op::Create(k, v),
                Op::Replace(k, a, b) => Op::Replace(k, b, a),
            }]
        }
    }

    #[derive(Default)]
    struct Store {
        map: BTreeMap<&'static str, u32>,
        /// Fail (as the kernel would) on the step with this text.
        fail_on: Option<String>,
        /// Also fail every undo (a rollback that cannot complete).
        fail_undo: bool,
        undoing: bool,
    }

    impl Store {
        fn clone_store(&self) -> Store {
            Store {
                map: self.map.clone(),
                ..Store::default()
            }
        }
    }

    impl Executor<Op> for Store {
        type Error = String;
        fn exec(&mut self, op: &Op) -> Result<(), String> {
            if self.fail_on.as_deref() == Some(&op.to_string()) {
                return Err("EPERM".into());
            }
            if self.undoing && self.fail_undo {
                return Err("EBUSY".into());
            }
            match *op {
                Op::Create(k, v) => {
                    if self.map.contains_key(k) {
                        return Err(format!("{k} exists"));
                    }
                    self.map.insert(k, v);
                }
                Op::Delete(k, v) => {
                    if self.map.get(k) != Some(&v) {
                        return Err(format!("{k}={v} not found"));
                    }
                    self.map.remove(k);
                }
                Op::Replace(k, a, b) => {
                    if self.map.get(k) != Some(&a) {
                        return Err(format!("{k}={a} not found"));
                    }
                    self.map.insert(k, b);
                }
            }
            Ok(())
        }
    }

    fn steps() -> Vec<Op> {
        vec![
            Op::Delete("old", 1),
            Op::Replace("kept", 2, 3),
            Op::Create("a", 4),
            Op::Create("b", 5),
        ]
    }

    fn store() -> Store {
        let mut s = Store::default();
        s.map.insert("old", 1);
        s.map.insert("kept", 2);
        s.map.insert("foreign", 9);
        s
    }

    fn quiet(_: &str) {}

    #[test]
    fn every_kind_of_step_is_undone_by_its_inverse() {
        for op in steps() {
            let mut s = store();
            if let Op::Create(k, _) = op {
                s.map.remove(k);
            }
            let before = s.map.clone();
            s.exec(&op).unwrap();
            assert_ne!(s.map, before, "{op} changed nothing");
            for u in op.undo() {
                s.exec(&u).unwrap();
            }
            assert_eq!(s.map, before, "undo of {op}");
            assert_eq!(op.undo()[0].undo(), vec![op.clone()], "undo of undo");
        }
    }

    #[test]
    fn all_steps_apply_and_verify() {
        let mut s = store();
        run("the store", &mut s, &steps(), &quiet, &|| {}, |_| vec![]).unwrap();
        let want: BTreeMap<_, _> = [("kept", 3), ("a", 4), ("b", 5), ("foreign", 9)].into();
        assert_eq!(s.map, want);
    }

    #[test]
    fn a_failure_at_every_step_rolls_back_exactly() {
        for (i, failing) in steps().iter().enumerate() {
            let mut s = store();
            let before = s.map.clone();
            s.fail_on = Some(failing.to_string());
            let e = run("the store", &mut s, &steps(), &quiet, &|| {}, |_| vec![]).unwrap_err();
            assert_eq!(s.map, before, "failure at step {i}: store restored");
            let msg = e.to_string();
            assert!(
                msg.starts_with(&format!("change {} of 4 failed: {failing}\n  EPERM", i + 1)),
                "{msg}"
            );
            assert!(
                msg.ends_with(&format!(
                    "rolled back {i} applied change(s); the store is as before"
                )),
                "{msg}"
            );
            assert_eq!(e.exec_error().map(String::as_str), Some("EPERM"));
        }
    }

    #[test]
    fn injected_failures_match_command_lines() {
        let mut s = store();
        let before = s.map.clone();
        std::env::set_var(FAIL_ON_ENV, "create b");
        let e = run("the store", &mut s, &steps(), &quiet, &|| {}, |_| vec![]);
        std::env::remove_var(FAIL_ON_ENV);
        let e = e.unwrap_err();
        assert!(e.exec_error().is_none());
        assert!(e
            .to_string()
            .contains("injected failure (LBCTL_FAIL_ON=create b)"));
        assert_eq!(s.map, before);
    }

    #[test]
    fn a_failed_verification_undoes_everything() {
        let mut s = store();
        let before = s.map.clone();
        let e = run("the store", &mut s, &steps(), &quiet, &|| {}, |st| {
            assert_eq!(st.map.get("b"), Some(&5), "verify sees the applied state");
            vec!["b: expected 6, found 5".into()]
        })
        .unwrap_err();
        assert_eq!(s.map, before);
        let msg = e.to_string();
        assert!(
            msg.contains("verification failed: the store does not show"),
            "{msg}"
        );
        assert!(msg.contains("b: expected 6, found 5"), "{msg}");
        assert!(msg.ends_with("rolled back all applied change(s); the store is as before"));
    }

    #[test]
    fn a_stop_request_rolls_back_and_a_second_one_aborts_the_rollback() {
        use std::cell::Cell;
        // One request before step 3: steps 1 and 2 are undone.
        let mut s = store();
        let before = s.map.clone();
        let calls = Cell::new(0u32);
        let stops = || {
            calls.set(calls.get() + 1);
            u32::from(calls.get() > 2)
        };
        let e = run_interruptible(
            "the store",
            &mut s,
            &steps(),
            &quiet,
            &|| {},
            &stops,
            |_| vec![],
        )
        .unwrap_err();
        assert!(e.is_interrupted());
        assert_eq!(s.map, before);
        assert_eq!(
            e.to_string(),
            "interrupted before change 3 of 4; rolled back 2 applied change(s); the store is as before"
        );
        // A second request during that rollback stops it: what was not undone is listed.
        let mut s = store();
        let calls = Cell::new(0u32);
        let stops = || {
            calls.set(calls.get() + 1);
            match calls.get() {
                0..=3 => 0,
                4 => 1,
                _ => 2,
            }
        };
        let e = run_interruptible(
            "the store",
            &mut s,
            &steps(),
            &quiet,
            &|| {},
            &stops,
            |_| vec![],
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("the rollback was aborted by a second signal; 3 undo step(s) not done"),
            "{msg}"
        );
        assert!(msg.contains("delete a=4"), "{msg}");
    }

    #[test]
    fn a_rollback_that_fails_is_reported_step_by_step() {
        let mut s = store();
        s.fail_on = Some("create b=5".into());
        s.fail_undo = true;
        // Mark undo phase: the first failure flips the store into "undoing".
        struct Flip<'a>(&'a mut Store);
        impl Executor<Op> for Flip<'_> {
            type Error = String;
            fn exec(&mut self, op: &Op) -> Result<(), String> {
                let r = self.0.exec(op);
                if r.is_err() {
                    self.0.undoing = true;
                }
                r
            }
        }
        let e = run(
            "the store",
            &mut Flip(&mut s),
            &steps(),
            &quiet,
            &|| {},
            |_| vec![],
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("rollback incomplete (3 undo step(s) failed):"),
            "{msg}"
        );
        assert!(msg.contains("delete a=4: EBUSY"), "{msg}");
    }

    /// An executor that pipelines runs of creates and deletes like the netlink one: up to
    /// `window` steps are started before the first answer is read, so after a failure the
    /// steps already in flight still complete.
    struct Piped<'a> {
        store: &'a mut Store,
        window: usize,
        /// Batches performed, with their sizes.
        batches: Vec<usize>,
    }

    fn pipelinable(op: &Op) -> Option<bool> {
        match op {
            Op::Create(..) => Some(true),
            Op::Delete(..) => Some(false),
            Op::Replace(..) => None,
        }
    }

    impl Executor<Op> for Piped<'_> {
        type Error = String;
        fn exec(&mut self, op: &Op) -> Result<(), String> {
            self.store.exec(op)
        }
        fn batch_len(&self, steps: &[Op]) -> usize {
            let Some(kind) = steps.first().and_then(pipelinable) else {
                return 1;
            };
            steps
                .iter()
                .take_while(|s| pipelinable(s) == Some(kind))
                .count()
        }
        fn exec_batch(
            &mut self,
            steps: &[Op],
            issue: &mut dyn FnMut(usize) -> bool,
            stop_on_error: bool,
        ) -> Vec<Option<Result<(), String>>> {
            self.batches.push(steps.len());
            let mut out: Vec<Option<Result<(), String>>> = steps.iter().map(|_| None).collect();
            let mut sent = 0;
            let mut read = 0;
            let mut stopped = false;
            loop {
                // Send while the window allows; the kernel acts on each as it arrives.
                while !stopped && sent < steps.len() && sent - read < self.window {
                    if !issue(sent) {
                        stopped = true;
                        break;
                    }
                    out[sent] = Some(self.store.exec(&steps[sent]));
                    sent += 1;
                }
                if read == sent {
                    break;
                }
                // Read one answer.
                stopped |= stop_on_error && matches!(out[read], Some(Err(_)));
                read += 1;
            }
            out
        }
    }

    /// 2 replaces (one at a time) around runs of 6 creates and 4 deletes (batches).
    fn batch_steps() -> (Vec<Op>, Store) {
        const KEYS: [&str; 10] = ["k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9"];
        let mut s = Store::default();
        s.map.insert("kept", 2);
        let mut steps = vec![Op::Replace("kept", 2, 3)];
        for k in &KEYS[6..] {
            s.map.insert(k, 7);
            steps.push(Op::Delete(k, 7));
        }
        steps.push(Op::Replace("kept", 3, 4));
        steps.extend(KEYS[..6].iter().map(|k| Op::Create(k, 1)));
        (steps, s)
    }

    #[test]
    fn batches_apply_and_a_failure_anywhere_in_one_rolls_back_everything_applied() {
        let (steps, start) = batch_steps();
        let mut s = start.clone_store();
        let mut x = Piped {
            store: &mut s,
            window: 3,
            batches: vec![],
        };
        run("the store", &mut x, &steps, &quiet, &|| {}, |_| vec![]).unwrap();
        assert_eq!(x.batches, vec![4, 6], "one batch per run");
        assert_eq!(s.map.len(), 7);
        for (i, failing) in steps.iter().enumerate() {
            let mut s = start.clone_store();
            s.fail_on = Some(failing.to_string());
            let mut x = Piped {
                store: &mut s,
                window: 3,
                batches: vec![],
            };
            let e = run("the store", &mut x, &steps, &quiet, &|| {}, |_| vec![]).unwrap_err();
            assert_eq!(s.map, start.map, "failure at step {i}: store restored");
            let msg = e.to_string();
            assert!(
                msg.starts_with(&format!(
                    "change {} of {} failed: {failing}\n  EPERM",
                    i + 1,
                    steps.len()
                )),
                "{msg}"
            );
            // Everything before the failed step was applied, and in a batch up to two more
            // (in flight): all of it is undone and counted.
            let TxnError::Apply { applied, .. } = e else {
                panic!("{e}")
            };
            let batch_end = if i < 5 { 5 } else { steps.len() };
            let in_flight = if pipelinable(failing).is_some() {
                (batch_end - i - 1).min(2)
            } else {
                0
            };
            assert_eq!(applied, i + in_flight, "failure at step {i}: {msg}");
            assert!(
                msg.ends_with(&format!(
                    "rolled back {applied} applied change(s); the store is as before"
                )),
                "{msg}"
            );
        }
    }

    #[test]
    fn a_stop_request_during_a_batch_lets_the_steps_in_flight_finish_and_undoes_all() {
        use std::cell::Cell;
        let (steps, start) = batch_steps();
        // The stop arrives as step 9 (the 3rd create) is about to start: stops() is asked before
        // each of the 8 one-at-a-time and batched steps so far, and before the creates'
        // batch.
        for window in [1, 3, 64] {
            let mut s = start.clone_store();
            let calls = Cell::new(0u32);
            let stops = || {
                calls.set(calls.get() + 1);
                u32::from(calls.get() > 10)
            };
            let mut x = Piped {
                store: &mut s,
                window,
                batches: vec![],
            };
            let e = run_interruptible(
                "the store",
                &mut x,
                &steps,
                &quiet,
                &|| {},
                &stops,
                |_| vec![],
            )
            .unwrap_err();
            assert!(e.is_interrupted(), "{e}");
            assert_eq!(s.map, start.map, "window {window}");
            assert_eq!(
                e.to_string(),
                "interrupted before change 9 of 12; rolled back 8 applied change(s); the store \
                 is as before"
            );
        }
    }

    #[test]
    fn a_rollback_of_batches_stops_at_a_second_signal() {
        use std::cell::Cell;
        let (steps, start) = batch_steps();
        let mut s = start.clone_store();
        // Stop before step 12 (all creates but the last applied; stops() was asked 13 times
        // by then); a second request arrives after 3 undo steps of the first undo batch.
        let calls = Cell::new(0u32);
        let stops = || {
            calls.set(calls.get() + 1);
            match calls.get() {
                0..=13 => 0,
                14..=19 => 1,
                _ => 2,
            }
        };
        let mut x = Piped {
            store: &mut s,
            window: 2,
            batches: vec![],
        };
        let e = run_interruptible(
            "the store",
            &mut x,
            &steps,
            &quiet,
            &|| {},
            &stops,
            |_| vec![],
        )
        .unwrap_err();
        let TxnError::Interrupted {
            index,
            rollback_aborted,
            ..
        } = &e
        else {
            panic!("{e}")
        };
        assert_eq!(*index, 11, "{e}");
        // Undone: the creates of k4, k3, k2. Left, in undo order: everything else applied.
        assert_eq!(
            rollback_aborted,
            &[
                "delete k1=1",
                "delete k0=1",
                "replace kept=4 with 3",
                "create k9=7",
                "create k8=7",
                "create k7=7",
                "create k6=7",
                "replace kept=3 with 2"
            ]
        );
        let keys: Vec<&str> = s.map.keys().copied().collect();
        assert_eq!(keys, ["k0", "k1", "kept"]);
        assert!(e.to_string().contains("aborted by a second signal"), "{e}");
    }
}
