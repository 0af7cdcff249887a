//! The DNS health check's messages: one query (RD set, one question) and the few fields of the
//! answer the check needs. Hand-built (about 60 lines) rather than a DNS library: the check asks
//! one question and only needs the header, so a resolver crate would be all weight.

/// Record types the check can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QType {
    A,
    Aaaa,
}

impl QType {
    pub fn parse(s: &str) -> Option<QType> {
        match s.to_ascii_uppercase().as_str() {
            "A" => Some(QType::A),
            "AAAA" => Some(QType::Aaaa),
            _ => None,
        }
    }

    fn code(self) -> u16 {
        match self {
            QType::A => 1,
            QType::Aaaa => 28,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            QType::A => "A",
            QType::Aaaa => "AAAA",
        }
    }
}

/// Check a name the way it will be encoded: labels of 1..=63 letters, digits, '-' or '_'.
pub fn validate_name(name: &str) -> Result<(), String> {
    let n = name.strip_suffix('.').unwrap_or(name);
    if n.is_empty() || n.len() > 253 {
        return Err(format!("invalid DNS name '{name}'"));
    }
    for l in n.split('.') {
        if l.is_empty()
            || l.len() > 63
            || !l
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!("invalid DNS name '{name}' (label '{l}')"));
        }
    }
    Ok(())
}

/// A standard query for `name` (validated) with this id.
pub fn query(id: u16, name: &str, qtype: QType) -> Vec<u8> {
    let mut m = Vec::with_capacity(32 + name.len());
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0x01, 0x00]); // RD
    m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // QDCOUNT 1
    for l in name.strip_suffix('.').unwrap_or(name).split('.') {
        m.push(l.len() as u8);
        m.extend_from_slice(l.as_bytes());
    }
    m.push(0);
    m.extend_from_slice(&qtype.code().to_be_bytes());
    m.extend_from_slice(&[0, 1]); // IN
    m
}

/// What the check reads from an answer: its response code and how many answer records it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub rcode: u8,
    pub answers: u16,
}

/// The header of `msg` if it is a response to query `id`.
pub fn parse_answer(id: u16, msg: &[u8]) -> Result<Answer, String> {
    if msg.len() < 12 {
        return Err(format!("a {}-byte answer is not DNS", msg.len()));
    }
    if u16::from_be_bytes([msg[0], msg[1]]) != id || msg[2] & 0x80 == 0 {
        return Err("the answer is not a response to the query".into());
    }
    Ok(Answer {
        rcode: msg[3] & 0x0f,
        answers: u16::from_be_bytes([msg[6], msg[7]]),
    })
}

pub fn rcode_name(r: u8) -> String {
    match r {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        n => format!("RCODE {n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_answer() {
        let q = query(0x1234, "svc.example.", QType::A);
        assert_eq!(
            q,
            b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03svc\x07example\x00\x00\x01\x00\x01"
        );
        let mut a = q.clone();
        a[2] |= 0x80;
        a[7] = 1;
        assert_eq!(
            parse_answer(0x1234, &a),
            Ok(Answer {
                rcode: 0,
                answers: 1
            })
        );
        assert!(parse_answer(0x1235, &a).is_err());
        assert!(parse_answer(0x1234, &q).is_err(), "a query is no answer");
        assert!(validate_name("a..b").is_err());
        assert!(validate_name("a b").is_err());
        assert!(validate_name("_dns.example.org").is_ok());
        assert_eq!(QType::parse("aaaa"), Some(QType::Aaaa));
    }
}
