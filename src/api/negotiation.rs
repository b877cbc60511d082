//! Content negotiation: which representation an `Accept` header asks for, and which decoder a
//! `Content-Type` needs. Unsupported choices become 406 and 415 as kube-apiserver words them.

use super::error::{ApiError, ApiResult};

/// One media range of an `Accept` header.
#[derive(Clone, Debug, PartialEq)]
pub struct MediaRange {
    /// `application`
    pub type_: String,
    /// `json`
    pub subtype: String,
    /// Parameters other than `q`, lower-cased names.
    pub params: Vec<(String, String)>,
    /// Quality.
    pub q: f32,
}

impl MediaRange {
    /// A parameter value.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn is(&self, t: &str, s: &str) -> bool {
        (self.type_ == t || self.type_ == "*") && (self.subtype == s || self.subtype == "*")
    }
}

/// Parses an `Accept` header into media ranges, best first (stable for equal quality).
pub fn parse_accept(header: &str) -> Vec<MediaRange> {
    let mut ranges: Vec<MediaRange> = header
        .split(',')
        .filter_map(|part| {
            let mut pieces = part.split(';');
            let mime = pieces.next()?.trim().to_ascii_lowercase();
            let (type_, subtype) = mime.split_once('/')?;
            let mut q = 1.0;
            let mut params = Vec::new();
            for p in pieces {
                let Some((k, v)) = p.split_once('=') else {
                    continue;
                };
                let (k, v) = (
                    k.trim().to_ascii_lowercase(),
                    v.trim().trim_matches('"').to_string(),
                );
                if k == "q" {
                    q = v.parse().unwrap_or(0.0);
                } else {
                    params.push((k, v));
                }
            }
            Some(MediaRange {
                type_: type_.trim().to_string(),
                subtype: subtype.trim().to_string(),
                params,
                q,
            })
        })
        .filter(|r| r.q > 0.0)
        .collect();
    ranges.sort_by(|a, b| b.q.partial_cmp(&a.q).unwrap_or(std::cmp::Ordering::Equal));
    ranges
}

/// What a response is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// One object (get, create, update, patch, delete).
    Object,
    /// A collection (list).
    List,
    /// A watch stream.
    Watch,
}

/// The representation chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// The object(s) as JSON.
    Json,
    /// The object(s) as YAML.
    Yaml,
    /// A `meta.k8s.io` Table (`v1beta1` when asked so).
    Table {
        /// Asked for `v1beta1`.
        beta: bool,
    },
    /// `PartialObjectMetadata` (or the List form for collections).
    Metadata {
        /// Asked for `v1beta1`.
        beta: bool,
    },
}

/// The media types kube-apiserver's serializer for a custom resource supports, as its 406 and
/// 415 answers list them. Protobuf is listed (and accepted as a request body, which then fails
/// to decode), but a custom resource is never served as protobuf.
pub const ACCEPTED: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
];

/// Chooses the representation an `Accept` header asks for.
pub fn negotiate(accept: Option<&str>, target: Target) -> ApiResult<Output> {
    let header = accept.unwrap_or("").trim();
    if header.is_empty() {
        return Ok(Output::Json);
    }
    for range in parse_accept(header) {
        let as_ = range.param("as");
        let meta_group = range.param("g") == Some("meta.k8s.io");
        let beta = match range.param("v") {
            Some("v1") => Some(false),
            Some("v1beta1") => Some(true),
            _ => None,
        };
        match as_ {
            None => {
                if range.is("application", "json") {
                    return Ok(Output::Json);
                }
                if range.is("application", "yaml") && target != Target::Watch {
                    return Ok(Output::Yaml);
                }
            }
            Some("Table") if meta_group && range.is("application", "json") => {
                if let Some(beta) = beta {
                    return Ok(Output::Table { beta });
                }
            }
            Some("PartialObjectMetadata")
                if meta_group && range.is("application", "json") && target != Target::List =>
            {
                if let Some(beta) = beta {
                    return Ok(Output::Metadata { beta });
                }
            }
            Some("PartialObjectMetadataList")
                if meta_group && range.is("application", "json") && target == Target::List =>
            {
                if let Some(beta) = beta {
                    return Ok(Output::Metadata { beta });
                }
            }
            _ => {}
        }
    }
    Err(ApiError::not_acceptable(ACCEPTED))
}

/// How a request body is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFormat {
    /// `application/json`
    Json,
    /// `application/yaml`
    Yaml,
    /// `application/vnd.kubernetes.protobuf`: accepted, but a custom resource cannot be decoded
    /// from it (400).
    Protobuf,
}

/// The media type of a `Content-Type` (lower case; `""` when there is none, which means JSON),
/// or `"invalid"` when Go's `mime.ParseMediaType` rejects it (so it matches no served type and
/// is a `415`, as in kube-apiserver).
fn mime_of(content_type: Option<&str>) -> String {
    match content_type {
        None | Some("") => String::new(),
        Some(v) => parse_media_type(v).unwrap_or_else(|| "invalid".into()),
    }
}

/// Go's `mime.ParseMediaType`, for validity only: `type[/subtype]` of tokens, then
/// `; name=value` parameters (value a token or a quoted string; trailing `;` allowed, names
/// not repeated). The lower-cased media type, or `None`.
fn parse_media_type(v: &str) -> Option<String> {
    let (base, mut rest) = v.split_once(';').map_or((v, None), |(b, r)| (b, Some(r)));
    let media = base.trim().to_ascii_lowercase();
    let (kind, sub) = media
        .split_once('/')
        .map_or((media.as_str(), None), |(k, s)| (k, Some(s)));
    if kind.is_empty() || !kind.chars().all(is_token_char) {
        return None;
    }
    if let Some(sub) = sub
        && (sub.is_empty() || !sub.chars().all(is_token_char))
    {
        return None;
    }
    let mut names = std::collections::HashSet::new();
    while let Some(params) = rest {
        let param = params.trim_start();
        if param.is_empty() {
            break;
        }
        let key_len = param.find(|c| !is_token_char(c)).unwrap_or(param.len());
        let (key, after) = param.split_at(key_len);
        if key.is_empty() {
            return None;
        }
        let value = after.trim_start().strip_prefix('=')?.trim_start();
        let remainder = if let Some(quoted) = value.strip_prefix('"') {
            let mut escaped = false;
            let end = quoted.char_indices().find_map(|(i, c)| {
                let closes = c == '"' && !escaped;
                escaped = c == '\\' && !escaped;
                closes.then_some(i)
            })?;
            &quoted[end + 1..]
        } else {
            let len = value.find(|c| !is_token_char(c)).unwrap_or(value.len());
            if len == 0 {
                return None;
            }
            &value[len..]
        };
        if !names.insert(key.to_ascii_lowercase()) {
            return None;
        }
        let remainder = remainder.trim_start();
        rest = match remainder.strip_prefix(';') {
            Some(next) => Some(next),
            None if remainder.is_empty() => None,
            None => return None,
        };
    }
    Some(media)
}

/// RFC 2045 token characters: printable ASCII but space and `()<>@,;:\"/[]?=`.
fn is_token_char(c: char) -> bool {
    c.is_ascii_graphic() && !"()<>@,;:\\\"/[]?=".contains(c)
}

/// The decoder for the body of a create or update.
pub fn body_format(content_type: Option<&str>) -> ApiResult<BodyFormat> {
    match mime_of(content_type).as_str() {
        "" | "application/json" => Ok(BodyFormat::Json),
        "application/yaml" => Ok(BodyFormat::Yaml),
        "application/vnd.kubernetes.protobuf" => Ok(BodyFormat::Protobuf),
        _ => Err(ApiError::unsupported_media_type(ACCEPTED)),
    }
}

/// The patch types served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    /// RFC 6902.
    Json,
    /// RFC 7386.
    Merge,
    /// Server-side apply.
    Apply,
}

/// The patch type of a PATCH body. Strategic merge patch is refused as for a custom resource.
pub fn patch_type(content_type: Option<&str>) -> ApiResult<PatchType> {
    match mime_of(content_type).as_str() {
        "application/json-patch+json" => Ok(PatchType::Json),
        "application/merge-patch+json" => Ok(PatchType::Merge),
        "application/apply-patch+yaml" => Ok(PatchType::Apply),
        _ => Err(ApiError::unsupported_media_type(&[
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/apply-patch+yaml",
        ])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_are_parsed_as_go_parses_them() {
        for ok in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/json;",
            "application/json; ",
            "application/json; a=\"x;y\"; b=c",
            "text",
        ] {
            assert!(parse_media_type(ok).is_some(), "{ok}");
        }
        for bad in [
            ";;;/",
            "/json",
            "application/",
            "application/json/x",
            "application/json;;",
            "application/json; a",
            "application/json; a=",
            "application/json; a=b; a=c",
            "application/json; a=\"unterminated",
            "appli cation/json",
        ] {
            assert!(parse_media_type(bad).is_none(), "{bad}");
        }
        assert!(body_format(Some(";;;/")).is_err());
        assert!(matches!(body_format(None), Ok(BodyFormat::Json)));
    }

    #[test]
    fn kubectl_table_accept_header_picks_v1_table() {
        let h = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(
            negotiate(Some(h), Target::List).unwrap(),
            Output::Table { beta: false }
        );
        assert_eq!(
            negotiate(Some(h), Target::Watch).unwrap(),
            Output::Table { beta: false }
        );
    }

    #[test]
    fn negotiation_table() {
        let cases = [
            (None, Target::Object, Some(Output::Json)),
            (Some("*/*"), Target::Object, Some(Output::Json)),
            (Some("application/yaml"), Target::List, Some(Output::Yaml)),
            (Some("application/yaml"), Target::Watch, None),
            (
                Some("application/vnd.kubernetes.protobuf, application/json"),
                Target::Object,
                Some(Output::Json),
            ),
            (
                Some("application/vnd.kubernetes.protobuf"),
                Target::Object,
                None,
            ),
            (Some("text/html"), Target::Object, None),
            (
                Some("application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"),
                Target::Watch,
                Some(Output::Metadata { beta: false }),
            ),
            (
                Some("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"),
                Target::List,
                Some(Output::Metadata { beta: false }),
            ),
            (
                Some("application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"),
                Target::List,
                None,
            ),
            (
                Some("application/json;q=0.5,application/yaml"),
                Target::Object,
                Some(Output::Yaml),
            ),
        ];
        for (accept, target, want) in cases {
            assert_eq!(
                negotiate(accept, target).ok(),
                want,
                "{accept:?} {target:?}"
            );
        }
        assert_eq!(
            negotiate(Some("text/html"), Target::Object)
                .unwrap_err()
                .code(),
            406
        );
    }

    #[test]
    fn strategic_merge_patch_is_415_like_a_crd() {
        let err = patch_type(Some("application/strategic-merge-patch+json")).unwrap_err();
        assert_eq!(err.code(), 415);
        assert_eq!(
            err.message(),
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
        );
    }
}
