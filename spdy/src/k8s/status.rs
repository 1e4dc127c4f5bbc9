//! The outcome report of an exec on its error stream: the v4 `Status`
//! JSON object, written by the server and decoded by the client.

use super::{ClientError, ExecProtocol};

/// The `Status` the v4 protocol reports for success.
pub fn success_status() -> String {
    r#"{"metadata":{},"status":"Success"}"#.to_owned()
}

/// The `Status` the v4 protocol reports for a non-zero exit code (what
/// client-go's `errorDecoderV4` turns into an exit code; it parses the
/// code as an unsigned 8-bit number).
pub fn exit_code_status(code: i32) -> String {
    failure_status(
        "NonZeroExitCode",
        &format!("command terminated with non-zero exit code: {code}"),
        Some(code),
    )
}

/// A failure `Status` with `reason`, `message` and, for an exit code, the
/// `ExitCode` cause.
pub fn failure_status(reason: &str, message: &str, exit_code: Option<i32>) -> String {
    let mut status = format!(
        r#"{{"metadata":{{}},"status":"Failure","message":{},"reason":{}"#,
        json_string(message),
        json_string(reason)
    );
    if let Some(code) = exit_code {
        status.push_str(&format!(
            r#","details":{{"causes":[{{"reason":"ExitCode","message":"{code}"}}]}}"#
        ));
    }
    status.push('}');
    status
}

/// A JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The outcome of an exec from its error stream's report.
pub(super) fn decode_exit(protocol: ExecProtocol, report: &[u8]) -> Result<i32, ClientError> {
    let text = String::from_utf8_lossy(report);
    if text.trim().is_empty() {
        return Ok(0);
    }
    if !protocol.reports_status() {
        return Err(ClientError::Failed {
            reason: None,
            message: text.trim().to_owned(),
        });
    }
    let Some(Json::Object(status)) = Json::parse(&text) else {
        return Err(ClientError::Failed {
            reason: None,
            message: format!("undecodable status: {}", text.trim()),
        });
    };
    let field = |object: &[(String, Json)], key: &str| -> Option<String> {
        match object.iter().find(|(k, _)| k == key)? {
            (_, Json::String(s)) => Some(s.clone()),
            _ => None,
        }
    };
    if field(&status, "status").as_deref() == Some("Success") {
        return Ok(0);
    }
    let reason = field(&status, "reason");
    let message = field(&status, "message").unwrap_or_else(|| "remote command failed".to_owned());
    if reason.as_deref() == Some("NonZeroExitCode") {
        let causes = match status.iter().find(|(k, _)| k == "details") {
            Some((_, Json::Object(details))) => match details.iter().find(|(k, _)| k == "causes") {
                Some((_, Json::Array(causes))) => causes.as_slice(),
                _ => &[],
            },
            _ => &[],
        };
        let code = causes.iter().find_map(|cause| match cause {
            Json::Object(cause) if field(cause, "reason").as_deref() == Some("ExitCode") => {
                field(cause, "message")?.trim().parse::<i32>().ok()
            }
            _ => None,
        });
        if let Some(code) = code {
            return Ok(code);
        }
    }
    Err(ClientError::Failed { reason, message })
}

/// A JSON value, for the `Status` on the error stream .
#[derive(Debug, Clone, PartialEq)]
enum Json {
    /// `null`, `true`, `false` or a number.
    Scalar,
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

/// How deep [`Json::parse`] nests.
const MAX_JSON_DEPTH: usize = 64;

impl Json {
    /// The one JSON value of `text` (surrounding whitespace allowed).
    fn parse(text: &str) -> Option<Json> {
        let mut chars = text.chars().peekable();
        let value = Json::value(&mut chars, 0)?;
        skip_ws(&mut chars);
        chars.peek().is_none().then_some(value)
    }

    fn value(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, depth: usize) -> Option<Json> {
        if depth > MAX_JSON_DEPTH {
            return None;
        }
        skip_ws(chars);
        match *chars.peek()? {
            '{' => {
                chars.next();
                let mut fields = Vec::new();
                skip_ws(chars);
                if chars.next_if_eq(&'}').is_some() {
                    return Some(Json::Object(fields));
                }
                loop {
                    skip_ws(chars);
                    let Json::String(key) = Json::value(chars, depth + 1)? else {
                        return None;
                    };
                    skip_ws(chars);
                    chars.next_if_eq(&':')?;
                    let value = Json::value(chars, depth + 1)?;
                    fields.push((key, value));
                    skip_ws(chars);
                    match chars.next()? {
                        ',' => continue,
                        '}' => return Some(Json::Object(fields)),
                        _ => return None,
                    }
                }
            }
            '[' => {
                chars.next();
                let mut items = Vec::new();
                skip_ws(chars);
                if chars.next_if_eq(&']').is_some() {
                    return Some(Json::Array(items));
                }
                loop {
                    items.push(Json::value(chars, depth + 1)?);
                    skip_ws(chars);
                    match chars.next()? {
                        ',' => continue,
                        ']' => return Some(Json::Array(items)),
                        _ => return None,
                    }
                }
            }
            '"' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next()? {
                        '"' => return Some(Json::String(s)),
                        '\\' => match chars.next()? {
                            '"' => s.push('"'),
                            '\\' => s.push('\\'),
                            '/' => s.push('/'),
                            'b' => s.push('\u{8}'),
                            'f' => s.push('\u{c}'),
                            'n' => s.push('\n'),
                            'r' => s.push('\r'),
                            't' => s.push('\t'),
                            'u' => {
                                let high = hex4(chars)?;
                                let c = if (0xd800..0xdc00).contains(&high) {
                                    // A surrogate pair: \uD83D\uDE00.
                                    if chars.next()? != '\\' || chars.next()? != 'u' {
                                        return None;
                                    }
                                    let low = hex4(chars)?;
                                    if !(0xdc00..0xe000).contains(&low) {
                                        return None;
                                    }
                                    0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00)
                                } else {
                                    high
                                };
                                s.push(char::from_u32(c).unwrap_or('\u{fffd}'));
                            }
                            _ => return None,
                        },
                        c => s.push(c),
                    }
                }
            }
            c if c == '-' || c.is_ascii_digit() => {
                let mut n = String::new();
                while let Some(c) = chars.next_if(|c| c.is_ascii_digit() || "+-.eE".contains(*c)) {
                    n.push(c);
                }
                n.parse::<f64>().ok().map(|_| Json::Scalar)
            }
            _ => {
                let word: String =
                    std::iter::from_fn(|| chars.next_if(|c| c.is_ascii_alphabetic())).collect();
                match &word[..] {
                    "null" | "true" | "false" => Some(Json::Scalar),
                    _ => None,
                }
            }
        }
    }
}

fn skip_ws(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while chars.next_if(|c| c.is_ascii_whitespace()).is_some() {}
}

/// Four hex digits (a `\\u` escape's).
fn hex4(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<u32> {
    let hex: String = (0..4).map(|_| chars.next()).collect::<Option<_>>()?;
    u32::from_str_radix(&hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(
            exit_code_status(3),
            r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#
        );
        assert_eq!(json_string("a\"b\\\n\u{1}"), r#""a\"b\\\n\u0001""#);
    }

    #[test]
    fn exit_decoding() {
        let v4 = ExecProtocol::V4;
        assert_eq!(decode_exit(v4, b"").unwrap(), 0);
        assert_eq!(decode_exit(v4, success_status().as_bytes()).unwrap(), 0);
        assert_eq!(decode_exit(v4, exit_code_status(3).as_bytes()).unwrap(), 3);
        assert_eq!(
            decode_exit(v4, exit_code_status(255).as_bytes()).unwrap(),
            255
        );
        // client-go's order of fields, with kind and code.
        let status = r#" {"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 7], exit code 7","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"7"}]},"code":500}
"#;
        assert_eq!(decode_exit(v4, status.as_bytes()).unwrap(), 7);
        match decode_exit(
            v4,
            failure_status("InternalError", "no \"such\" file \u{e9}", None).as_bytes(),
        ) {
            Err(ClientError::Failed { reason, message }) => {
                assert_eq!(reason.as_deref(), Some("InternalError"));
                assert_eq!(message, "no \"such\" file \u{e9}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decode_exit(v4, b"{\"status\":"),
            Err(ClientError::Failed { .. })
        ));
        assert!(matches!(
            decode_exit(
                ExecProtocol::V2,
                b"command terminated with non-zero exit code: 2"
            ),
            Err(ClientError::Failed { .. })
        ));
        assert_eq!(decode_exit(ExecProtocol::V3, b"").unwrap(), 0);
    }

    #[test]
    fn json_values() {
        assert_eq!(
            Json::parse(r#"{"a":[1,-2.5e3,true,null,{}],"b":"\u00e9\ud83d\ude00\n"}"#),
            Some(Json::Object(vec![
                (
                    "a".into(),
                    Json::Array(vec![
                        Json::Scalar,
                        Json::Scalar,
                        Json::Scalar,
                        Json::Scalar,
                        Json::Object(vec![])
                    ])
                ),
                ("b".into(), Json::String("\u{e9}\u{1f600}\n".into())),
            ]))
        );
        for bad in ["", "{", "[1,]", r#"{"a" 1}"#, "tru", "{} x", "\"\\x\""] {
            assert_eq!(Json::parse(bad), None, "{bad}");
        }
        let deep = "[".repeat(1000);
        assert_eq!(Json::parse(&deep), None);
    }
}
