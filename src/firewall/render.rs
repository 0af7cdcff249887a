//! Rules back to nft syntax, so a verdict names the rule the way `nft -a list ruleset` shows it
//! (lbctl spawns nft once, for JSON; the text is rendered from that JSON). Constructs this file
//! does not know are shown as their JSON, never dropped.

use serde_json::Value;

/// `tcp dport 80 counter packets 0 bytes 0 drop`
pub fn rule(expr: &[Value]) -> String {
    expr.iter().map(stmt).collect::<Vec<_>>().join(" ")
}

fn json(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Left-hand side of a match, e.g. `ip saddr`, `meta l4proto`, `fib saddr . iif oif`.
pub fn left(v: &Value) -> String {
    if let Some(p) = v.get("payload") {
        if let (Some(proto), Some(field)) = (p["protocol"].as_str(), p["field"].as_str()) {
            return format!("{proto} {field}");
        }
        return format!(
            "@{},{},{}",
            p["base"].as_str().unwrap_or("?"),
            p["offset"],
            p["len"]
        );
    }
    if let Some(m) = v.get("meta") {
        let key = m["key"].as_str().unwrap_or("?");
        return if matches!(key, "iif" | "oif" | "iifname" | "oifname") {
            key.to_string()
        } else {
            format!("meta {key}")
        };
    }
    if let Some(c) = v.get("ct") {
        let key = c["key"].as_str().unwrap_or("?");
        return match c["dir"].as_str() {
            Some(d) => format!("ct {d} {key}"),
            None => format!("ct {key}"),
        };
    }
    if let Some(f) = v.get("fib") {
        let flags: Vec<&str> = f["flags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        return format!(
            "fib {} {}",
            flags.join(" . "),
            f["result"].as_str().unwrap_or("?")
        );
    }
    if let Some(parts) = v.get("concat").and_then(Value::as_array) {
        return parts.iter().map(left).collect::<Vec<_>>().join(" . ");
    }
    for op in ["&", "|", "^", "<<", ">>"] {
        if let Some(args) = v.get(op).and_then(Value::as_array) {
            return args
                .iter()
                .map(left)
                .collect::<Vec<_>>()
                .join(&format!(" {op} "));
        }
    }
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => json(v),
    }
}

fn quoted_key(l: &Value) -> bool {
    l.get("meta")
        .and_then(|m| m["key"].as_str())
        .is_some_and(|k| matches!(k, "iif" | "oif" | "iifname" | "oifname"))
}

/// Right-hand side of a match; interface names are quoted as nft prints them.
pub fn right(v: &Value, quote: bool) -> String {
    match v {
        Value::String(s) if quote && !s.starts_with('@') => format!("\"{s}\""),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => (if *b { "exists" } else { "missing" }).to_string(),
        Value::Array(a) => a
            .iter()
            .map(|x| right(x, quote))
            .collect::<Vec<_>>()
            .join(","),
        Value::Object(o) => {
            if let Some(set) = o.get("set").and_then(Value::as_array) {
                let items: Vec<String> = set
                    .iter()
                    .map(|e| match e.as_array() {
                        // A map element: key : value.
                        Some(kv) if kv.len() == 2 => {
                            format!("{} : {}", right(&kv[0], quote), stmt(&kv[1]))
                        }
                        _ => right(e, quote),
                    })
                    .collect();
                return format!("{{ {} }}", items.join(", "));
            }
            if let Some(p) = o.get("prefix") {
                return format!("{}/{}", right(&p["addr"], false), p["len"]);
            }
            if let Some(r) = o.get("range").and_then(Value::as_array) {
                if r.len() == 2 {
                    return format!("{}-{}", right(&r[0], quote), right(&r[1], quote));
                }
            }
            if let Some(e) = o.get("elem") {
                return right(&e["val"], quote);
            }
            if let Some(parts) = o.get("concat").and_then(Value::as_array) {
                return parts
                    .iter()
                    .map(|p| right(p, quote))
                    .collect::<Vec<_>>()
                    .join(" . ");
            }
            json(v)
        }
        Value::Null => String::new(),
    }
}

/// One statement: a match, a verdict or an action.
pub fn stmt(v: &Value) -> String {
    let Some((k, x)) = v.as_object().and_then(|o| o.iter().next()) else {
        return json(v);
    };
    match k.as_str() {
        "match" => {
            let op = x["op"].as_str().unwrap_or("==");
            let l = &x["left"];
            let r = &x["right"];
            // `fib … oif 0` prints the literal; `missing`/`exists` come from booleans.
            let op = match op {
                "==" | "in" => String::new(),
                other => format!("{other} "),
            };
            // `tcp flags syn / fin,syn,rst,ack`: a flag mask compared for equality.
            if let Some([inner, mask @ Value::Array(_)]) =
                l.get("&").and_then(Value::as_array).map(Vec::as_slice)
            {
                return format!(
                    "{} {op}{} / {}",
                    left(inner),
                    right(r, false),
                    right(mask, false)
                );
            }
            format!("{} {op}{}", left(l), right(r, quoted_key(l)))
        }
        "accept" | "drop" | "return" | "continue" => k.clone(),
        "jump" | "goto" => format!("{k} {}", x["target"].as_str().unwrap_or("?")),
        "reject" => match x.get("type").and_then(Value::as_str) {
            Some("tcp reset") => "reject with tcp reset".into(),
            Some(t) => match x.get("expr").and_then(Value::as_str) {
                Some(e) => format!("reject with {t} {e}"),
                None => format!("reject with {t}"),
            },
            None => "reject".into(),
        },
        "counter" => match (x["packets"].as_u64(), x["bytes"].as_u64()) {
            (Some(p), Some(b)) => format!("counter packets {p} bytes {b}"),
            _ => "counter".into(),
        },
        "log" => match x.get("prefix").and_then(Value::as_str) {
            Some(p) => format!("log prefix \"{p}\""),
            None => "log".into(),
        },
        "limit" => format!(
            "limit rate {}{}/{}",
            if x["inv"] == true { "over " } else { "" },
            x["rate"],
            x["per"].as_str().unwrap_or("second")
        ),
        "vmap" => format!("{} vmap {}", left(&x["key"]), right(&x["data"], false)),
        "xt" => format!(
            "xt {} {}",
            x["type"].as_str().unwrap_or("?"),
            x["name"].as_str().unwrap_or("?")
        ),
        "notrack" => "notrack".into(),
        "mangle" => format!("{} set {}", left(&x["key"]), right(&x["value"], false)),
        _ => json(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_like_nft_list() {
        let r = json!([
            {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "eth*"}},
            {"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": {"prefix": {"addr": "198.18.0.0", "len": 24}}}},
            {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": {"set": [22, {"range": [80, 81]}]}}},
            {"counter": {"packets": 0, "bytes": 0}},
            {"jump": {"target": "blocked"}}
        ]);
        assert_eq!(
            rule(r.as_array().unwrap()),
            "iifname \"eth*\" ip saddr != 198.18.0.0/24 tcp dport { 22, 80-81 } counter packets 0 bytes 0 jump blocked"
        );
        let r = json!([
            {"match": {"op": "==", "left": {"fib": {"result": "oif", "flags": ["saddr", "iif"]}}, "right": false}},
            {"drop": null}
        ]);
        assert_eq!(
            rule(r.as_array().unwrap()),
            "fib saddr . iif oif missing drop"
        );
        let r = json!([{"vmap": {"key": {"ct": {"key": "state"}}, "data": {"set": [["established", {"accept": null}], ["invalid", {"drop": null}]]}}}]);
        assert_eq!(
            rule(r.as_array().unwrap()),
            "ct state vmap { established : accept, invalid : drop }"
        );
    }
}
