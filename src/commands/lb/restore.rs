//! `lb restore`: apply ipvsadm rules, all checked against the current table first.

use std::io::Read as _;

use super::{finish, Ipvs};
use crate::cli::lb::RestoreArgs;
use crate::context::Env;
use crate::error::Result;
use crate::ipvs::plan::{self, NumberedRule, Planned, Table};
use crate::ipvs::spec;
use crate::ipvs::text::{self, Rule};
use crate::{usage, Ctx, Outcome};

/// Parse ipvsadm rule text, keeping line numbers; every rule is validated.
pub fn parse_rule_text(text: &str, origin: &str) -> Result<Vec<NumberedRule>> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let t = raw.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let t = t.strip_prefix("ipvsadm ").map(str::trim_start).unwrap_or(t);
        let rule = text::parse_rule(t)
            .map_err(|e| usage!("{origin} line {line}: {}: {t}", e.replace('`', "'")))?;
        let checked = match &rule {
            Rule::AddDest(k, d) | Rule::EditDest(k, d) => spec::validate_dest(k, d),
            r => r.validate().map_err(|e| e.to_string()),
        };
        checked.map_err(|e| usage!("{origin} line {line}: {e}: {t}"))?;
        out.push(NumberedRule { line, rule });
    }
    Ok(out)
}

pub(super) fn restore(ctx: &Ctx, env: &Env, a: &RestoreArgs) -> Result<Outcome> {
    let (origin, text) = match &a.file {
        Some(p) if p.as_os_str() != "-" => (
            p.display().to_string(),
            std::fs::read_to_string(p).map_err(|e| usage!("cannot read {}: {e}", p.display()))?,
        ),
        _ => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| usage!("cannot read standard input: {e}"))?;
            ("<stdin>".to_string(), s)
        }
    };
    let rules = parse_rule_text(&text, &origin)?;
    // the rules must also make sense on their own (against an empty table), whatever the kernel
    // holds: this catches a real server before its service, a duplicate, …
    let standalone = if a.flush {
        let c = plan::changes_of_rules(&Table::default(), &rules)
            .map_err(|e| usage!("{origin} {e}"))?;
        Some(plan::simulate(&Table::default(), &c).map_err(|e| usage!("{origin}: {e}"))?)
    } else {
        None
    };
    let mut ipvs = Ipvs::change(ctx, env, "lb restore")?;
    let before = ipvs.table()?;
    let p = match standalone {
        Some(desired) => Planned {
            changes: plan::diff(&desired, &before, &|_| true),
            notes: Vec::new(),
            unchanged: "the IPVS table already is exactly the file's".into(),
        },
        None => Planned {
            changes: plan::changes_of_rules(&before, &rules).map_err(|e| {
                usage!(
                    "{origin} {e} (nothing was changed; `lb restore --flush` replaces the \
                     whole table)"
                )
            })?,
            notes: Vec::new(),
            unchanged: "no rules".into(),
        },
    };
    finish(ctx, &mut ipvs, &before, p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_text_is_validated_with_line_numbers() {
        let ok = "# saved\n\nipvsadm -A -t 198.18.0.100:80 -s rr\n-a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 1\n";
        let r = parse_rule_text(ok, "f").unwrap();
        assert_eq!(r.iter().map(|r| r.line).collect::<Vec<_>>(), [3, 4]);
        for (text, err) in [
            (
                "-A -t 198.18.0.100:80 -s rr\n-X",
                "f line 2: unknown or unsupported option '-X'",
            ),
            (
                "-A -t 198.18.0.100:80 -s bogus",
                "f line 1: unknown scheduler 'bogus'",
            ),
            (
                "-a -t 198.18.0.100:80 -r 198.18.0.11:8080 -g",
                "f line 1: real server 198.18.0.11:8080 cannot serve",
            ),
        ] {
            let e = parse_rule_text(text, "f").unwrap_err().to_string();
            assert!(e.starts_with(err), "{text}: {e}");
        }
    }
}
