//! Query parameters and the options they carry (`ListOptions`, `CreateOptions`, ...), decoded
//! and validated with kube-apiserver's rules and messages.

use super::error::{ApiError, ApiResult};
use super::selectors::{FieldSelector, LabelSelector};
use crate::field_error::FieldError;
use crate::fields::managed::manager_from_user_agent;
use crate::kinds::Resource;
use crate::registry::{FieldValidation, WriteOptions};
use serde_json::Value;

/// Fields every kind can be selected on.
pub const SELECTABLE_FIELDS: &[&str] = &["metadata.name", "metadata.namespace"];

/// The decoded query string.
#[derive(Clone, Debug, Default)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Decodes a raw query string.
    pub fn parse(raw: &str) -> Query {
        Query {
            pairs: form_urlencoded::parse(raw.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        }
    }

    /// The first value of a parameter.
    pub fn first(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a parameter.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A boolean parameter as Kubernetes reads one: present and not `0`/`false`.
    pub fn flag(&self, key: &str) -> Option<bool> {
        self.first(key)
            .map(|v| !(v == "0" || v.eq_ignore_ascii_case("false")))
    }

    /// An integer parameter; a malformed one is a 400 worded like Go's `strconv`.
    pub fn int(&self, key: &str) -> ApiResult<Option<i64>> {
        match self.first(key) {
            None => Ok(None),
            Some(v) => v.parse::<i64>().map(Some).map_err(|_| {
                ApiError::bad_request(format!(
                    "strconv.ParseInt: parsing {}: invalid syntax",
                    crate::field_error::go_quote(v)
                ))
            }),
        }
    }
}

fn options_invalid(kind: &str, errs: Vec<FieldError>) -> ApiResult<()> {
    if errs.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid("meta.k8s.io", kind, "", &errs))
    }
}

fn dry_run_errors(query: &Query, errs: &mut Vec<FieldError>) -> bool {
    let values = query.all("dryRun");
    if values.iter().any(|v| *v != "All") {
        let shown = Value::Array(
            values
                .iter()
                .map(|v| Value::String(v.to_string()))
                .collect(),
        );
        errs.push(FieldError::not_supported("dryRun", &shown, &["All".into()]));
    }
    !values.is_empty()
}

/// The options of a create, update or patch (`options_kind` names them in errors).
pub fn write_options(
    query: &Query,
    options_kind: &str,
    user_agent: &str,
    apply: bool,
) -> ApiResult<WriteOptions> {
    let mut errs = Vec::new();
    let field_manager = query.first("fieldManager").unwrap_or("").to_string();
    if apply && field_manager.is_empty() {
        errs.push(FieldError::required(
            "fieldManager",
            "is required for apply patch",
        ));
    }
    if !apply && query.first("force").is_some() && options_kind == "PatchOptions" {
        errs.push(FieldError::forbidden(
            "force",
            "may not be specified for non-apply patch",
        ));
    }
    if field_manager.len() > 128 {
        errs.push(FieldError::too_long("fieldManager", 128));
    }
    for (i, c) in field_manager.char_indices() {
        if c.is_control() {
            errs.push(FieldError::invalid(
                "fieldManager",
                &Value::String(field_manager.clone()),
                &format!("invalid character U+{:04X} (at position {i})", c as u32),
            ));
        }
    }
    let dry_run = dry_run_errors(query, &mut errs);
    let field_validation = match query.first("fieldValidation").unwrap_or("") {
        "" | "Warn" => FieldValidation::Warn,
        "Ignore" => FieldValidation::Ignore,
        "Strict" => FieldValidation::Strict,
        other => {
            errs.push(FieldError::not_supported(
                "fieldValidation",
                &Value::String(other.into()),
                &["".into(), "Ignore".into(), "Strict".into(), "Warn".into()],
            ));
            FieldValidation::Warn
        }
    };
    options_invalid(options_kind, errs)?;
    Ok(WriteOptions {
        dry_run,
        field_manager: if field_manager.is_empty() {
            manager_from_user_agent(user_agent)
        } else {
            field_manager
        },
        field_validation,
        ownership: Default::default(),
        api_version: String::new(),
    })
}

/// `resourceVersionMatch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionMatch {
    /// Not given.
    Unset,
    /// `NotOlderThan`.
    NotOlderThan,
    /// `Exact`.
    Exact,
}

/// Decoded and validated `ListOptions`.
#[derive(Clone, Debug)]
pub struct ListOptions {
    /// `labelSelector`.
    pub labels: LabelSelector,
    /// `fieldSelector`.
    pub fields: FieldSelector,
    /// `watch`.
    pub watch: bool,
    /// `allowWatchBookmarks`.
    pub allow_bookmarks: bool,
    /// `resourceVersion` (empty when not given).
    pub resource_version: String,
    /// `resourceVersionMatch`.
    pub version_match: VersionMatch,
    /// `timeoutSeconds`.
    pub timeout_seconds: Option<i64>,
    /// `limit` (0 means none).
    pub limit: i64,
    /// `continue`.
    pub continue_token: String,
    /// `sendInitialEvents`.
    pub send_initial_events: Option<bool>,
}

impl ListOptions {
    /// Decodes and validates the list options of a query for a collection of `resource`, in
    /// kube-apiserver's order: decoding (400), `ValidateListOptions` (422), then the fields the
    /// kind can be selected on (400).
    pub fn parse(query: &Query, resource: &Resource) -> ApiResult<ListOptions> {
        let options = ListOptions::parse_any(query)?;
        options
            .fields
            .check_fields(resource.kind.selectable_fields())
            .map_err(ApiError::bad_request)?;
        Ok(options)
    }

    /// A list or watch of one object by its path (`/watch/.../apps/<name>`): the field selector
    /// must select that object (`listOpts`).
    pub fn for_name(mut self, name: &str) -> ApiResult<ListOptions> {
        if !name.is_empty() {
            self.fields
                .require_name(name)
                .map_err(ApiError::bad_request)?;
        }
        Ok(self)
    }

    /// Decodes and validates list options whatever fields the selector names.
    pub fn parse_any(query: &Query) -> ApiResult<ListOptions> {
        let labels = LabelSelector::parse(query.first("labelSelector").unwrap_or(""))
            .map_err(ApiError::bad_request)?;
        let fields = FieldSelector::parse_any(query.first("fieldSelector").unwrap_or(""))
            .map_err(ApiError::bad_request)?;
        let raw_match = query.first("resourceVersionMatch").unwrap_or("");
        let options = ListOptions {
            labels,
            fields,
            watch: query.flag("watch").unwrap_or(false),
            allow_bookmarks: query.flag("allowWatchBookmarks").unwrap_or(false),
            resource_version: query.first("resourceVersion").unwrap_or("").to_string(),
            version_match: match raw_match {
                "NotOlderThan" => VersionMatch::NotOlderThan,
                "Exact" => VersionMatch::Exact,
                _ => VersionMatch::Unset,
            },
            timeout_seconds: query.int("timeoutSeconds")?,
            limit: query.int("limit")?.unwrap_or(0),
            continue_token: query.first("continue").unwrap_or("").to_string(),
            send_initial_events: query.flag("sendInitialEvents"),
        };
        options_invalid("ListOptions", options.validate(raw_match))?;
        Ok(options)
    }

    fn validate(&self, raw_match: &str) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let forbidden = |msg: &str| FieldError::forbidden("resourceVersionMatch", msg);
        if self.watch {
            if self.send_initial_events.is_some()
                && self.version_match != VersionMatch::NotOlderThan
            {
                errs.push(forbidden(
                    "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                ));
            }
            if !raw_match.is_empty() {
                if self.send_initial_events.is_none() {
                    errs.push(forbidden(
                        "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
                    ));
                }
                if self.version_match != VersionMatch::NotOlderThan {
                    errs.push(FieldError::not_supported(
                        "resourceVersionMatch",
                        &Value::String(raw_match.into()),
                        &["NotOlderThan".into()],
                    ));
                }
                if !self.continue_token.is_empty() {
                    errs.push(forbidden(
                        "resourceVersionMatch is forbidden when continue is provided",
                    ));
                }
            }
            return errs;
        }
        if !raw_match.is_empty() {
            if self.resource_version.is_empty() {
                errs.push(forbidden(
                    "resourceVersionMatch is forbidden unless resourceVersion is provided",
                ));
            }
            if !self.continue_token.is_empty() {
                errs.push(forbidden(
                    "resourceVersionMatch is forbidden when continue is provided",
                ));
            }
            if self.version_match == VersionMatch::Unset {
                errs.push(FieldError::not_supported(
                    "resourceVersionMatch",
                    &Value::String(raw_match.into()),
                    &["Exact".into(), "NotOlderThan".into(), "".into()],
                ));
            }
            if self.version_match == VersionMatch::Exact && self.resource_version == "0" {
                errs.push(forbidden(
                    "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                ));
            }
        }
        if self.send_initial_events.is_some() {
            errs.push(FieldError::forbidden(
                "sendInitialEvents",
                "sendInitialEvents is forbidden for list",
            ));
        }
        errs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_initial_events_on_a_list_is_forbidden_like_kube() {
        let err = ListOptions::parse_any(&Query::parse("sendInitialEvents=true")).unwrap_err();
        assert_eq!(err.code(), 422);
        assert_eq!(
            err.message(),
            "ListOptions.meta.k8s.io \"\" is invalid: sendInitialEvents: Forbidden: sendInitialEvents is forbidden for list"
        );
    }

    #[test]
    fn write_options_validation() {
        let ok = write_options(
            &Query::parse("dryRun=All&fieldManager=me"),
            "CreateOptions",
            "kubectl/v1",
            false,
        )
        .unwrap();
        assert!(ok.dry_run);
        assert_eq!(ok.field_manager, "me");
        let defaulted = write_options(
            &Query::parse(""),
            "CreateOptions",
            "kubectl/v1.32 (linux)",
            false,
        )
        .unwrap();
        assert_eq!(defaulted.field_manager, "kubectl");
        let err =
            write_options(&Query::parse("dryRun=Some"), "CreateOptions", "", false).unwrap_err();
        assert_eq!(
            err.message(),
            "CreateOptions.meta.k8s.io \"\" is invalid: dryRun: Unsupported value: [\"Some\"]: supported values: \"All\""
        );
        let err = write_options(
            &Query::parse("fieldValidation=Loose"),
            "UpdateOptions",
            "",
            false,
        )
        .unwrap_err();
        assert_eq!(
            err.message(),
            "UpdateOptions.meta.k8s.io \"\" is invalid: fieldValidation: Unsupported value: \"Loose\": supported values: \"\", \"Ignore\", \"Strict\", \"Warn\""
        );
        assert_eq!(
            write_options(&Query::parse(""), "PatchOptions", "", true)
                .unwrap_err()
                .message(),
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
        );
    }

    #[test]
    fn bad_integers_and_selectors_are_400() {
        assert_eq!(
            ListOptions::parse_any(&Query::parse("limit=abc"))
                .unwrap_err()
                .code(),
            400
        );
        assert_eq!(
            ListOptions::parse_any(&Query::parse("labelSelector=a%20in%20b"))
                .unwrap_err()
                .code(),
            400
        );
    }

    #[test]
    fn field_selectors_follow_the_kind_and_its_scope() {
        let app = crate::test_support::resource("App");
        let nsres = crate::test_support::resource("NamespaceReservation");
        let cases = [
            (
                &app,
                "fieldSelector=spec.x%3D1",
                Some("field label not supported: spec.x"),
            ),
            (&app, "fieldSelector=metadata.namespace%3Dx", None),
            (&app, "fieldSelector=metadata.name%3Dx", None),
            (
                &nsres,
                "fieldSelector=metadata.namespace%3Dx",
                Some("field label not supported: metadata.namespace"),
            ),
            (
                &nsres,
                "fieldSelector=metadata.name%3Dx,metadata.namespace!%3Dy",
                Some("field label not supported: metadata.namespace"),
            ),
            (&nsres, "fieldSelector=metadata.name%3Dx", None),
        ];
        for (resource, q, want) in cases {
            let got = ListOptions::parse(&Query::parse(q), resource);
            match want {
                None => assert!(got.is_ok(), "{q}"),
                Some(message) => {
                    let err = got.unwrap_err();
                    assert_eq!((err.code(), err.message()), (400, message), "{q}");
                }
            }
        }
        // A bad combination is refused (422) before the field is looked at (400).
        let err = ListOptions::parse(
            &Query::parse("fieldSelector=spec.x%3D1&sendInitialEvents=true"),
            &app,
        )
        .unwrap_err();
        assert_eq!(err.code(), 422);
    }
}
