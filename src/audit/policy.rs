//! The audit policy (`--audit-policy-file`): an `audit.k8s.io/v1` `Policy` whose first matching
//! rule decides a request's level and omitted stages, exactly as k8s.io/apiserver's
//! `pkg/audit/policy` (checker and reader) does. A request no rule matches is not audited.

use super::{Level, Stage};
use crate::auth::User;
use crate::auth::review::Attributes;
use serde::Deserialize;

/// One `resources` entry of a rule.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupResources {
    /// API group (`""` is the core group, `"*"` any).
    #[serde(default)]
    pub group: String,
    /// Resources (`apps`, `apps/status`, `*/status`, `apps/*`, `*`); empty: all of the group.
    #[serde(default)]
    pub resources: Vec<String>,
    /// Object names; empty: any.
    #[serde(default)]
    pub resource_names: Vec<String>,
}

/// A policy rule (`audit.k8s.io/v1` `PolicyRule`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    /// The level of the requests it matches.
    pub level: Level,
    /// User names; empty: any.
    #[serde(default)]
    pub users: Vec<String>,
    /// Groups, any of which matches; empty: any.
    #[serde(default)]
    pub user_groups: Vec<String>,
    /// Verbs; empty: any.
    #[serde(default)]
    pub verbs: Vec<String>,
    /// Resources; with `namespaces`, only resource requests match.
    #[serde(default)]
    pub resources: Vec<GroupResources>,
    /// Namespaces (`""` for cluster-scoped objects).
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Non-resource paths (`/healthz`, `/apis*`, `*`).
    #[serde(default, rename = "nonResourceURLs")]
    pub non_resource_urls: Vec<String>,
    /// Stages not written for matching requests (besides the policy's own).
    #[serde(default)]
    pub omit_stages: Vec<Stage>,
    /// Accepted for compatibility; managed fields are part of logged objects either way.
    #[serde(default)]
    pub omit_managed_fields: Option<bool>,
}

/// An audit policy.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    /// Must be `audit.k8s.io/v1`.
    #[serde(default)]
    pub api_version: String,
    /// Must be `Policy`.
    #[serde(default)]
    pub kind: String,
    /// Ignored (policies may carry metadata).
    #[serde(default)]
    pub metadata: serde_json::Value,
    /// Rules, first match wins.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Stages never written.
    #[serde(default)]
    pub omit_stages: Vec<Stage>,
    /// Accepted for compatibility.
    #[serde(default)]
    pub omit_managed_fields: bool,
}

/// What the policy decided for one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The level.
    pub level: Level,
    /// Stages not to write.
    pub omit_stages: Vec<Stage>,
}

impl Policy {
    /// Parses and validates a policy file's text (YAML or JSON), as kube's policy reader does.
    pub fn parse(text: &str) -> Result<Policy, String> {
        let policy: Policy = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
        if policy.api_version != "audit.k8s.io/v1" || policy.kind != "Policy" {
            return Err(format!(
                "not an audit.k8s.io/v1 Policy (apiVersion {:?}, kind {:?})",
                policy.api_version, policy.kind
            ));
        }
        if policy.rules.is_empty() {
            return Err("loaded illegal policy with 0 rules".into());
        }
        for (i, rule) in policy.rules.iter().enumerate() {
            let at = |what: &str| format!("rules[{i}]: {what}");
            if !rule.non_resource_urls.is_empty()
                && (!rule.resources.is_empty() || !rule.namespaces.is_empty())
            {
                return Err(at(
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
            for url in &rule.non_resource_urls {
                let star = url.find('*');
                if !(url == "*" || url.starts_with('/')) || star.is_some_and(|p| p != url.len() - 1)
                {
                    return Err(at(&format!(
                        "nonResourceURLs: Invalid value: {url:?}: must start with '/' and may only end with '*'"
                    )));
                }
            }
            for gr in &rule.resources {
                if !gr.resource_names.is_empty() && gr.resources.iter().any(|r| r.contains('*')) {
                    return Err(at("resourceNames require exact resources, not wildcards"));
                }
            }
        }
        Ok(policy)
    }

    /// The level and omitted stages of a request by `user` (none for a failed authentication).
    pub fn evaluate(&self, user: Option<&User>, attrs: &Attributes) -> Decision {
        for rule in &self.rules {
            if rule.matches(user, attrs) {
                let mut omit_stages = self.omit_stages.clone();
                for s in &rule.omit_stages {
                    if !omit_stages.contains(s) {
                        omit_stages.push(*s);
                    }
                }
                return Decision {
                    level: rule.level,
                    omit_stages,
                };
            }
        }
        Decision {
            level: Level::None,
            omit_stages: self.omit_stages.clone(),
        }
    }
}

fn path_matches(path: &str, spec: &str) -> bool {
    spec == "*"
        || spec == path
        || spec
            .strip_suffix('*')
            .is_some_and(|prefix| path.starts_with(prefix.trim_end_matches('*')))
}

impl Rule {
    /// kube's `ruleMatches`.
    fn matches(&self, user: Option<&User>, attrs: &Attributes) -> bool {
        if !self.users.is_empty() && !user.is_some_and(|u| self.users.contains(&u.name)) {
            return false;
        }
        if !self.user_groups.is_empty()
            && !user.is_some_and(|u| u.groups.iter().any(|g| self.user_groups.contains(g)))
        {
            return false;
        }
        if !self.verbs.is_empty() && !self.verbs.contains(&attrs.verb) {
            return false;
        }
        if !self.namespaces.is_empty() || !self.resources.is_empty() {
            return self.matches_resource(attrs);
        }
        if !self.non_resource_urls.is_empty() {
            return !attrs.resource_request
                && self
                    .non_resource_urls
                    .iter()
                    .any(|spec| path_matches(&attrs.path, spec));
        }
        true
    }

    /// kube's `ruleMatchesResource`.
    fn matches_resource(&self, attrs: &Attributes) -> bool {
        if !attrs.resource_request {
            return false;
        }
        if !self.namespaces.is_empty() && !self.namespaces.contains(&attrs.namespace) {
            return false;
        }
        if self.resources.is_empty() {
            return true;
        }
        let (resource, subresource) = (attrs.resource.as_str(), attrs.subresource.as_str());
        let combined = if subresource.is_empty() {
            resource.to_string()
        } else {
            format!("{resource}/{subresource}")
        };
        self.resources.iter().any(|gr| {
            if gr.group != attrs.group && gr.group != "*" {
                return false;
            }
            if gr.resources.is_empty() {
                return true;
            }
            if !gr.resource_names.is_empty() && !gr.resource_names.contains(&attrs.name) {
                return false;
            }
            gr.resources.iter().any(|res| {
                res == &combined
                    || res == "*"
                    || (!subresource.is_empty()
                        && res.strip_prefix("*/").is_some_and(|s| s == subresource))
                    || res.strip_suffix("/*").is_some_and(|r| r == resource)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: None
  users: ["system:kube-proxy"]
- level: None
  nonResourceURLs: ["/healthz*", "/readyz", "/livez"]
- level: RequestResponse
  userGroups: ["auditors"]
  verbs: ["create", "update"]
  resources:
  - group: admission.example.com
    resources: ["apps"]
- level: Request
  resources:
  - group: admission.example.com
    resources: ["*/scale"]
- level: Request
  resources:
  - group: admission.example.com
    resources: ["namespacereservations"]
    resourceNames: ["team-a"]
- level: Metadata
  resources:
  - group: admission.example.com
    resources: ["namespacereservations/*"]
- level: Metadata
  namespaces: ["kube-system"]
  omitStages: ["ResponseStarted"]
- level: Metadata
  nonResourceURLs: ["/apis*"]
- level: Request
  verbs: ["delete"]
"#;

    fn user(name: &str, groups: &[&str]) -> User {
        User {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..Default::default()
        }
    }

    fn resource(verb: &str, ns: &str, resource: &str, sub: &str, name: &str) -> Attributes {
        Attributes {
            resource_request: true,
            verb: verb.into(),
            group: "admission.example.com".into(),
            version: "v1".into(),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: ns.into(),
            name: name.into(),
            ..Default::default()
        }
    }

    fn path(verb: &str, path: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            path: path.into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_first_matching_rule_decides() {
        let policy = Policy::parse(POLICY).unwrap();
        let jane = user("jane", &["dev", "system:authenticated"]);
        let auditor = user("ann", &["auditors"]);
        let proxy = user("system:kube-proxy", &[]);
        use Level::*;
        let cases: Vec<(&str, Option<&User>, Attributes, Level)> = vec![
            (
                "users",
                Some(&proxy),
                resource("delete", "d", "apps", "", "x"),
                None,
            ),
            (
                "prefix URL",
                Some(&jane),
                path("get", "/healthz/ping"),
                None,
            ),
            ("exact URL", Some(&jane), path("get", "/readyz"), None),
            (
                "exact URL only",
                Some(&jane),
                path("get", "/readyz/x"),
                None,
            ),
            (
                "prefix URL 2",
                Some(&jane),
                path("get", "/apis/admission.example.com"),
                Metadata,
            ),
            (
                "groups+verbs+resources",
                Some(&auditor),
                resource("create", "d", "apps", "", ""),
                RequestResponse,
            ),
            (
                "group not held",
                Some(&jane),
                resource("create", "d", "apps", "", ""),
                None,
            ),
            (
                "verb not listed",
                Some(&auditor),
                resource("get", "d", "apps", "", "x"),
                None,
            ),
            (
                "no user",
                Option::None,
                resource("create", "d", "apps", "", ""),
                None,
            ),
            (
                "*/subresource",
                Some(&jane),
                resource("update", "d", "apps", "scale", "x"),
                Request,
            ),
            (
                "resource/*",
                Some(&jane),
                resource("update", "", "namespacereservations", "status", "x"),
                Metadata,
            ),
            (
                "namespaces",
                Some(&jane),
                resource("get", "kube-system", "widgets", "", "x"),
                Metadata,
            ),
            (
                "resource/* matches the resource too",
                Some(&jane),
                resource("patch", "", "namespacereservations", "", "team-c"),
                Metadata,
            ),
            (
                "resourceNames",
                Some(&jane),
                resource("get", "", "namespacereservations", "", "team-a"),
                Request,
            ),
            (
                "resourceNames miss: the next rule",
                Some(&jane),
                resource("get", "", "namespacereservations", "", "team-b"),
                Metadata,
            ),
            (
                "verb-only rule",
                Some(&jane),
                resource("delete", "d", "widgets", "", "x"),
                Request,
            ),
            (
                "verb-only rule, path",
                Some(&jane),
                path("delete", "/metrics"),
                Request,
            ),
            (
                "resources never match paths",
                Some(&jane),
                path("get", "/metrics"),
                None,
            ),
        ];
        for (name, user, attrs, level) in cases {
            assert_eq!(policy.evaluate(user, &attrs).level, level, "{name}");
        }
        // omitStages: the policy's, plus the rule's.
        let kube_system = policy.evaluate(
            Some(&jane),
            &resource("get", "kube-system", "widgets", "", "x"),
        );
        assert_eq!(
            kube_system.omit_stages,
            [Stage::RequestReceived, Stage::ResponseStarted]
        );
        let other = policy.evaluate(Some(&jane), &resource("update", "d", "apps", "scale", "x"));
        assert_eq!(other.omit_stages, [Stage::RequestReceived]);
    }

    #[test]
    fn wildcards_match_groups_and_resources() {
        let policy = Policy::parse(
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n  resources:\n  - group: \"*\"\n- level: Request\n  nonResourceURLs: [\"*\"]\n",
        )
        .unwrap();
        let jane = user("jane", &[]);
        assert_eq!(
            policy
                .evaluate(Some(&jane), &resource("list", "d", "apps", "", ""))
                .level,
            Level::Metadata
        );
        assert_eq!(
            policy.evaluate(Some(&jane), &path("get", "/version")).level,
            Level::Request
        );
    }

    #[test]
    fn invalid_policies_are_refused() {
        let bad = [
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: []\n",
            "apiVersion: audit.k8s.io/v1beta1\nkind: Policy\nrules:\n- level: None\n",
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Loud\n",
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n  omitStages: [Sometimes]\n",
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n  nonResourceURLs: [\"/a\"]\n  namespaces: [\"d\"]\n",
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n  nonResourceURLs: [\"healthz\"]\n",
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n  nonResourceURLs: [\"/a*b\"]\n",
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n  resources: [{group: \"\", resources: [\"*\"], resourceNames: [\"x\"]}]\n",
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n  userz: [a]\n",
        ];
        for text in bad {
            assert!(Policy::parse(text).is_err(), "{text}");
        }
    }
}
