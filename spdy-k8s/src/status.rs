//! The outcome report of an exec on its error stream: the v4 `Status`
//! JSON object, written by the server and decoded by the client.

use serde::{Deserialize, Serialize};

use super::{ClientError, ExecProtocol};

/// A Kubernetes `meta/v1` `Status`, as much of it as the exec protocols
/// use. The fields are in the order the apiserver writes them; absent ones
/// are left out, as client-go's `omitempty` does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    /// Always written as `{}`; whatever a peer sends is ignored.
    #[serde(skip_deserializing)]
    metadata: ListMeta,
    /// `Success` or `Failure` (missing counts as a failure).
    #[serde(default)]
    status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    details: Option<StatusDetails>,
}

/// The empty `metadata` object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
struct ListMeta {}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct StatusDetails {
    #[serde(default)]
    causes: Vec<StatusCause>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct StatusCause {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

impl Status {
    fn to_json(&self) -> String {
        // serde_json fails only on a failing `Serialize` impl or a map with
        // non-string keys; a `Status` has neither, so the fallback (a bare
        // failure) is never written.
        serde_json::to_string(self)
            .unwrap_or_else(|_| r#"{"metadata":{},"status":"Failure"}"#.to_owned())
    }
}

/// The `Status` the v4 protocol reports for success.
pub fn success_status() -> String {
    Status {
        status: "Success".to_owned(),
        ..Status::default()
    }
    .to_json()
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
    Status {
        status: "Failure".to_owned(),
        message: Some(message.to_owned()),
        reason: Some(reason.to_owned()),
        details: exit_code.map(|code| StatusDetails {
            causes: vec![StatusCause {
                reason: Some("ExitCode".to_owned()),
                message: Some(code.to_string()),
            }],
        }),
        ..Status::default()
    }
    .to_json()
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
    // serde_json bounds its nesting (128 levels), so a hostile report is
    // an error, not a stack overflow.
    let Ok(status) = serde_json::from_str::<Status>(&text) else {
        return Err(ClientError::Failed {
            reason: None,
            message: format!("undecodable status: {}", text.trim()),
        });
    };
    if status.status == "Success" {
        return Ok(0);
    }
    if status.reason.as_deref() == Some("NonZeroExitCode") {
        let code = status
            .details
            .iter()
            .flat_map(|d| &d.causes)
            .find_map(|cause| match (cause.reason.as_deref(), &cause.message) {
                (Some("ExitCode"), Some(message)) => message.trim().parse::<i32>().ok(),
                _ => None,
            });
        if let Some(code) = code {
            return Ok(code);
        }
    }
    Err(ClientError::Failed {
        reason: status.reason,
        message: status
            .message
            .unwrap_or_else(|| "remote command failed".to_owned()),
    })
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
    fn wire_format() {
        // What kubectl reads: these exact bytes, empty fields left out.
        assert_eq!(success_status(), r#"{"metadata":{},"status":"Success"}"#);
        assert_eq!(
            failure_status("InternalError", "a\"b\\\n\u{1}\u{e9}", None),
            r#"{"metadata":{},"status":"Failure","message":"a\"b\\\n\u0001é","reason":"InternalError"}"#
        );
    }

    #[test]
    fn hostile_reports() {
        let v4 = ExecProtocol::V4;
        // Deep nesting, even in a field nobody reads, is refused, not
        // followed down the stack.
        let deep = format!(r#"{{"status":"Success","x":{}}}"#, "[".repeat(100_000));
        assert!(matches!(
            decode_exit(v4, deep.as_bytes()),
            Err(ClientError::Failed { reason: None, .. })
        ));
        for bad in ["[]", "\"Success\"", "{} x", r#"{"status":"Success""#] {
            assert!(
                matches!(
                    decode_exit(v4, bad.as_bytes()),
                    Err(ClientError::Failed { .. })
                ),
                "{bad}"
            );
        }
        // Metadata and unknown fields of any shape are ignored.
        let status =
            br#"{"metadata":{"resourceVersion":"7"},"status":"Success","x":[1,{"y":null}]}"#;
        assert_eq!(decode_exit(v4, status).unwrap(), 0);
        // A failure without a message, and an exit code cause that is not
        // a number.
        let status = br#"{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"x"}]}}"#;
        match decode_exit(v4, status) {
            Err(ClientError::Failed { reason, message }) => {
                assert_eq!(reason.as_deref(), Some("NonZeroExitCode"));
                assert_eq!(message, "remote command failed");
            }
            other => panic!("{other:?}"),
        }
    }
}
