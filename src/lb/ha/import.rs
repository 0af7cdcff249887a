//! `lbctl lb import keepalived FILE`: the `virtual_server` blocks of a keepalived.conf as an LB
//! file (services, real servers, scheduler, weights, forwarding method, persistence, quorum,
//! sorry server, and the first real server's checker as the service's check). What has no LB
//! file equivalent is listed in a comment at the top, never silently dropped. The result is
//! validated by the LB file parser before it is printed.

use std::fmt::Write as _;

/// One statement (`keyword args…`) with its block, if any.
#[derive(Debug, Clone)]
struct Node {
    words: Vec<String>,
    children: Vec<Node>,
}

impl Node {
    fn key(&self) -> &str {
        self.words.first().map(String::as_str).unwrap_or("")
    }
    fn arg(&self, i: usize) -> Option<&str> {
        self.words.get(i).map(String::as_str)
    }
    fn find(&self, key: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.key() == key)
    }
}

/// Words of one line: comments (`#`, `!`) cut, quotes group, braces are their own words.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut was_quoted = false;
    for ch in line.chars() {
        match ch {
            '"' => {
                quoted = !quoted;
                was_quoted = true;
            }
            '#' | '!' if !quoted => break,
            '{' | '}' if !quoted => {
                if !cur.is_empty() || was_quoted {
                    out.push(std::mem::take(&mut cur));
                }
                was_quoted = false;
                out.push(ch.to_string());
            }
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() || was_quoted {
                    out.push(std::mem::take(&mut cur));
                }
                was_quoted = false;
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() || was_quoted {
        out.push(cur);
    }
    out
}

fn parse(text: &str) -> Result<Vec<Node>, String> {
    let mut stack: Vec<Node> = vec![Node {
        words: Vec::new(),
        children: Vec::new(),
    }];
    for (n, line) in text.lines().enumerate() {
        let mut pending: Vec<String> = Vec::new();
        for w in words(line) {
            match w.as_str() {
                "{" => {
                    stack.push(Node {
                        words: std::mem::take(&mut pending),
                        children: Vec::new(),
                    });
                }
                "}" => {
                    if !pending.is_empty() {
                        let node = Node {
                            words: std::mem::take(&mut pending),
                            children: Vec::new(),
                        };
                        stack.last_mut().unwrap().children.push(node);
                    }
                    if stack.len() < 2 {
                        return Err(format!("line {}: '}}' without a block", n + 1));
                    }
                    let done = stack.pop().unwrap();
                    stack.last_mut().unwrap().children.push(done);
                }
                _ => pending.push(w),
            }
        }
        if !pending.is_empty() {
            if pending[0] == "include" {
                return Err(format!(
                    "line {}: include is not followed; import the included file itself",
                    n + 1
                ));
            }
            let node = Node {
                words: pending,
                children: Vec::new(),
            };
            stack.last_mut().unwrap().children.push(node);
        }
    }
    if stack.len() != 1 {
        return Err("unbalanced braces: a block is not closed".into());
    }
    Ok(stack.pop().unwrap().children)
}

fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn host_port(ip: &str, port: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// Seconds (keepalived's unit, decimals allowed) as an LB file duration.
fn dur(s: &str) -> Option<String> {
    let v: f64 = s.parse().ok()?;
    (v > 0.0).then(|| format!("{}ms", (v * 1000.0).round() as u64))
}

/// The LB file text for `conf`'s virtual_server blocks, named `name`.
pub fn render(conf: &str, name: &str) -> Result<String, String> {
    let top = parse(conf)?;
    let mut skipped: Vec<String> = Vec::new();
    let mut body = String::new();
    let mut n = 0;
    for vs in &top {
        match vs.key() {
            "virtual_server" => {}
            "global_defs" | "vrrp_instance" | "vrrp_script" | "vrrp_sync_group"
            | "vrrp_track_file" | "static_ipaddress" | "static_routes" => continue,
            k => {
                skipped.push(format!("{k} {}", vs.words[1..].join(" ")));
                continue;
            }
        }
        n += 1;
        let _ = writeln!(body, "\n[[service]]");
        match (vs.arg(1), vs.arg(2)) {
            (Some("fwmark"), Some(m)) => {
                let _ = writeln!(body, "fwmark = {m}");
            }
            (Some("group"), _) | (Some(_), None) => {
                return Err(format!(
                    "virtual_server {}: only 'IP PORT' and 'fwmark N' are imported",
                    vs.words[1..].join(" ")
                ))
            }
            (Some(ip), Some(port)) => {
                let _ = writeln!(body, "vip = {}", q(&host_port(ip, port)));
            }
            (None, _) => return Err("virtual_server without an address".into()),
        }
        let what = vs.words[1..].join(" ");
        let mut kind = "dr".to_string();
        let mut check = String::new();
        let mut interval: Option<String> = None;
        let mut all_inhibit = true;
        let mut differ = false;
        let mut backends = String::new();
        for c in &vs.children {
            match (c.key(), c.arg(1)) {
                ("lb_algo", Some(a)) => {
                    let _ = writeln!(body, "scheduler = {}", q(a));
                }
                ("lb_kind", Some(k)) => kind = k.to_lowercase(),
                ("protocol", Some(p)) if vs.arg(1) != Some("fwmark") => {
                    if !p.eq_ignore_ascii_case("tcp") {
                        let _ = writeln!(body, "protocol = {}", q(&p.to_lowercase()));
                    }
                }
                ("protocol", _) => {}
                ("persistence_timeout", Some(t)) => {
                    let _ = writeln!(body, "persistent = {t}");
                }
                ("quorum", Some(v)) => {
                    let _ = writeln!(body, "quorum = {v}");
                }
                ("hysteresis", Some(v)) => {
                    let _ = writeln!(body, "hysteresis = {v}");
                }
                ("sorry_server", Some(ip)) => {
                    let port = c.arg(2).unwrap_or("0");
                    let _ = writeln!(body, "on_quorum_loss = \"sorry\"");
                    let _ = writeln!(body, "sorry_server = {}", q(&host_port(ip, port)));
                }
                ("delay_loop", Some(d)) => interval = dur(d),
                ("real_server", Some(ip)) => {
                    let port = c.arg(2).unwrap_or("0");
                    let _ = write!(backends, "\n[[service.backend]]\nrip = ");
                    let rip = if vs.arg(1) == Some("fwmark") {
                        ip.to_string()
                    } else {
                        host_port(ip, port)
                    };
                    let _ = writeln!(backends, "{}", q(&rip));
                    if let Some(w) = c.find("weight").and_then(|w| w.arg(1)) {
                        let _ = writeln!(backends, "weight = {w}");
                    }
                    if kind != "dr" {
                        let _ = writeln!(backends, "method = {}", q(&kind));
                    }
                    all_inhibit &= c.find("inhibit_on_failure").is_some();
                    let mine = checker(c, &what, &mut skipped);
                    if check.is_empty() {
                        check = mine;
                    } else if !mine.is_empty() && mine != check && !differ {
                        differ = true;
                        skipped.push(format!(
                            "virtual_server {what}: the real servers' checkers differ; the \
                             first one is the service's check"
                        ));
                    }
                }
                (k, _) => skipped.push(format!("virtual_server {what}: {k}")),
            }
        }
        if !all_inhibit {
            // keepalived's default takes a failed real server out of the table.
            let _ = writeln!(body, "on_failure = \"remove\"");
        }
        if !check.is_empty() || interval.is_some() {
            let _ = writeln!(body, "\n[service.check]");
            if check.is_empty() {
                check = "type = \"tcp\"\n".into();
            }
            body.push_str(&check);
            if let Some(i) = interval {
                let _ = writeln!(body, "interval = {}", q(&i));
            }
        }
        body.push_str(&backends);
    }
    if n == 0 {
        return Err("no virtual_server block to import".into());
    }
    let body = body.replace("\n\n\n", "\n\n");
    let mut out = format!(
        "# LB file imported from a keepalived.conf by `lbctl lb import keepalived`.\n\
         name = {}\n",
        q(name)
    );
    for s in &skipped {
        let _ = writeln!(out, "# not imported: {s}");
    }
    out.push_str(&body);
    // Never print a file lbctl itself would refuse.
    crate::ipvs::spec::parse_lb_file(&out, name)
        .map_err(|e| format!("the imported file does not validate: {e}\n{out}"))?;
    Ok(out)
}

/// A real server's checker as `[service.check]` lines.
fn checker(rs: &Node, what: &str, skipped: &mut Vec<String>) -> String {
    let mut s = String::new();
    for c in &rs.children {
        let opt = |k: &str| c.find(k).and_then(|n| n.arg(1)).map(str::to_string);
        let common = |s: &mut String| {
            if let Some(p) = opt("connect_port") {
                let _ = writeln!(s, "port = {p}");
            }
            if let Some(t) = opt("connect_timeout").and_then(|t| dur(&t)) {
                let _ = writeln!(s, "timeout = {}", q(&t));
            }
            if let Some(r) = opt("retry").or(opt("nb_get_retry")) {
                if let Ok(r) = r.parse::<u32>() {
                    let _ = writeln!(s, "fall = {}", r + 1);
                }
            }
        };
        match c.key() {
            "TCP_CHECK" => {
                s.push_str("type = \"tcp\"\n");
                common(&mut s);
            }
            "HTTP_GET" => {
                s.push_str("type = \"http\"\n");
                if let Some(url) = c.find("url") {
                    if let Some(p) = url.find("path").and_then(|n| n.arg(1)) {
                        let _ = writeln!(s, "path = {}", q(p));
                    }
                    if let Some(st) = url.find("status_code").and_then(|n| n.arg(1)) {
                        let _ = writeln!(s, "expect_status = {st}");
                    }
                }
                if let Some(h) = opt("virtualhost") {
                    let _ = writeln!(s, "host = {}", q(&h));
                }
                common(&mut s);
            }
            "MISC_CHECK" => {
                let Some(path) = opt("misc_path") else {
                    continue;
                };
                let mut argv = words(&path.replace('\'', "\""));
                // lbctl's own export runs the command through env(1) with LBCTL_* set.
                if argv.first().map(String::as_str) == Some("/usr/bin/env") {
                    argv.remove(0);
                    while argv.first().is_some_and(|a| a.starts_with("LBCTL_")) {
                        argv.remove(0);
                    }
                }
                let list: Vec<String> = argv.iter().map(|a| q(a)).collect();
                s.push_str("type = \"exec\"\n");
                let _ = writeln!(s, "command = [{}]", list.join(", "));
                if c.find("misc_dynamic").is_some() {
                    s.push_str("weight_from_exit = true\n");
                }
                if let Some(t) = opt("misc_timeout").and_then(|t| dur(&t)) {
                    let _ = writeln!(s, "timeout = {}", q(&t));
                }
            }
            "SSL_GET" | "SMTP_CHECK" | "DNS_CHECK" | "BFD_CHECK" | "FILE_CHECK" | "PING_CHECK"
            | "UDP_CHECK" => {
                skipped.push(format!(
                    "virtual_server {what}: {} (no lbctl equivalent)",
                    c.key()
                ));
                continue;
            }
            _ => continue,
        }
        return s;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_of_an_exported_file() {
        let lb = crate::ipvs::spec::parse_lb_file(
            "name = \"web\"\n[[service]]\nvip = \"198.18.0.100:80\"\nscheduler = \"wrr\"\n\
             [service.check]\ntype = \"http\"\npath = \"/health\"\n\
             [[service.backend]]\nrip = \"198.18.0.11\"\nweight = 2\n\
             [[service.backend]]\nrip = \"198.18.0.12\"\n\
             [[service]]\nvip = \"198.18.0.100:53\"\nprotocol = \"udp\"\non_failure = \"remove\"\n\
             [service.check]\ntype = \"exec\"\ncommand = [\"/bin/true\", \"a b\"]\nweight_from_exit = true\n\
             [[service.backend]]\nrip = \"198.18.0.11\"\n",
            "web",
        )
        .unwrap();
        let conf = super::super::export::render(&lb).unwrap();
        let back = render(&conf, "web").unwrap();
        let again = crate::ipvs::spec::parse_lb_file(&back, "web").unwrap();
        assert_eq!(again.table, lb.table, "{back}");
        assert_eq!(again.runs[0].check.probe, lb.runs[0].check.probe, "{back}");
        assert_eq!(again.runs[1].check.probe, lb.runs[1].check.probe, "{back}");
        assert!(again.runs[1].check.weight_from_exit);
        assert_eq!(again.runs[1].on_failure, lb.runs[1].on_failure);
    }

    #[test]
    fn refusals() {
        assert!(render("global_defs {\n}\n", "x")
            .unwrap_err()
            .contains("no virtual_server"));
        assert!(render("virtual_server 1.2.3.4 80 {\n", "x")
            .unwrap_err()
            .contains("not closed"));
        assert!(render("include /etc/x\n", "x")
            .unwrap_err()
            .contains("include"));
    }
}
