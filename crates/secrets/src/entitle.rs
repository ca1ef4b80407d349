//! Which values a job receives: the one rule, [`entitled`], and the set the
//! redactors match, [`redaction_set`].
//!
//! The rule (issue 3, "Entitlement"), applied to each bundle entry that has
//! not expired:
//! - `org` entries, and entries scoped to the job's own project
//!   (`project:<id>` equal to the job's `scope`); when both deliver a name,
//!   the project's value wins (it is the more specific one);
//! - a git token (kind `git`, or the legacy names `GITHUB_TOKEN` /
//!   `BITBUCKET_TOKEN` whatever their kind) only when it belongs to the
//!   provider of the job's repo. A job without a repo gets no git token, and
//!   a `git` entry without a provider reaches no job;
//! - the Anthropic key (kind `anthropic`, or the name `ANTHROPIC_API_KEY`)
//!   unless the backend is `local_claude`, where the host's own login is used
//!   and a key would switch the agent to API billing.
//!
//! Then every local override is added, winning over a bundle value of the same
//! name. Local values have no scope: they belong to the host, so they reach
//! every job, with the same provider and backend rules (a local
//! `BITBUCKET_TOKEN` does not reach a GitHub job, a local `ANTHROPIC_API_KEY`
//! does not reach a `local_claude` job).

use secrecy::ExposeSecret;
use spedy_api::{ANTHROPIC_API_KEY, Backend, GitProvider, JobSpec, Scope, SecretKind};
use time::OffsetDateTime;

use crate::{LocalOverrides, Redactor, SecretBundle, SecretSet};

/// The values `job` receives under `backend`, as of now.
pub fn entitled(
    bundle: &SecretBundle,
    overrides: &LocalOverrides,
    job: &JobSpec,
    backend: Backend,
) -> SecretSet {
    entitled_at(bundle, overrides, job, backend, OffsetDateTime::now_utc())
}

/// [`entitled`] at a given time (entries expired at `now` are left out).
pub fn entitled_at(
    bundle: &SecretBundle,
    overrides: &LocalOverrides,
    job: &JobSpec,
    backend: Backend,
    now: OffsetDateTime,
) -> SecretSet {
    let target = Target {
        provider: job.repo.as_ref().map(|r| r.provider),
        backend,
    };
    let project = match &job.scope {
        Some(Scope::Project(id)) => Some(id.as_str()),
        _ => None,
    };
    let mut set = SecretSet::new();
    // Org first, then the project, so that the project's value wins.
    for want_project in [false, true] {
        for e in bundle.entries() {
            let in_scope = match &e.scope {
                Scope::Org => !want_project,
                Scope::Project(id) => want_project && project == Some(id.as_str()),
            };
            if in_scope
                && !e.is_expired(now)
                && target.allows(role(&e.env, Some(e.kind), e.provider))
            {
                set.insert(e.env.clone(), e.value.clone());
            }
        }
    }
    for o in overrides.entries() {
        if target.allows(role(&o.name, None, None)) {
            set.insert(o.name.clone(), o.value.clone());
        }
    }
    set
}

/// The redactor over every value the runner holds: all bundle entries (expired
/// ones too: an old value must not leak either) and all local overrides.
pub fn redaction_set(bundle: &SecretBundle, overrides: &LocalOverrides) -> Redactor {
    let bundle_pairs = bundle
        .entries()
        .iter()
        .map(|e| (e.env.as_str(), e.value.expose_secret()));
    let local_pairs = overrides
        .entries()
        .iter()
        .map(|o| (o.name.as_str(), o.value.expose_secret()));
    Redactor::from_pairs(local_pairs.chain(bundle_pairs))
}

/// What a value is for, as far as entitlement cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Anthropic,
    Git(Option<GitProvider>),
    Other,
}

fn role(name: &str, kind: Option<SecretKind>, provider: Option<GitProvider>) -> Role {
    let by_name = [GitProvider::Github, GitProvider::Bitbucket]
        .into_iter()
        .find(|p| p.env_name() == name);
    match kind {
        Some(SecretKind::Anthropic) => Role::Anthropic,
        Some(SecretKind::Git) => Role::Git(provider.or(by_name)),
        _ if name == ANTHROPIC_API_KEY => Role::Anthropic,
        _ if by_name.is_some() => Role::Git(by_name),
        _ => Role::Other,
    }
}

/// The job's side of the rule.
struct Target {
    provider: Option<GitProvider>,
    backend: Backend,
}

impl Target {
    fn allows(&self, role: Role) -> bool {
        match role {
            Role::Anthropic => self.backend != Backend::LocalClaude,
            Role::Git(p) => p.is_some() && p == self.provider,
            Role::Other => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use secrecy::ExposeSecret;
    use spedy_api::{Repo, WireBundle};
    use time::macros::datetime;

    use super::*;

    const NOW: OffsetDateTime = datetime!(2026-12-03 12:10 UTC);

    fn bundle() -> SecretBundle {
        let wire: WireBundle = serde_json::from_str(
            r#"{"version": "v1", "issued_at": "2026-12-03T12:00:00Z", "refresh_after_s": 900, "secrets": [
              {"env": "ANTHROPIC_API_KEY", "value": "vault-anthropic", "kind": "anthropic", "scope": "org"},
              {"env": "GITHUB_TOKEN", "value": "vault-gh", "kind": "git", "provider": "github", "scope": "org"},
              {"env": "BITBUCKET_TOKEN", "value": "vault-bb", "kind": "git", "provider": "bitbucket", "scope": "org"},
              {"env": "LINEAR_MCP_TOKEN", "value": "vault-mcp", "kind": "mcp", "scope": "org"},
              {"env": "FLAG", "value": "org-flag", "kind": "custom", "scope": "org"},
              {"env": "FLAG", "value": "p1-flag", "kind": "custom", "scope": "project:p1"},
              {"env": "P1_ONLY", "value": "p1-only", "kind": "custom", "scope": "project:p1"},
              {"env": "P2_ONLY", "value": "p2-only", "kind": "custom", "scope": "project:p2"},
              {"env": "OLD", "value": "expired", "kind": "custom", "scope": "org",
               "expires_at": "2026-12-03T12:05:00Z"},
              {"env": "ODD_GIT", "value": "no-provider", "kind": "git", "scope": "org"}
            ]}"#,
        )
        .expect("parses");
        SecretBundle::from_wire(wire)
    }

    fn job(provider: Option<GitProvider>, project: Option<&str>) -> JobSpec {
        JobSpec {
            image: "img".into(),
            command: None,
            env: Default::default(),
            repo: provider.map(|provider| Repo {
                url: "https://example.com/o/r".into(),
                provider,
            }),
            scope: project.map(|p| Scope::Project(p.into())),
            timeout_s: 60,
        }
    }

    fn got(set: &SecretSet) -> Vec<(&str, &str)> {
        set.iter().map(|(n, v)| (n, v.expose_secret())).collect()
    }

    const GH: Option<GitProvider> = Some(GitProvider::Github);
    const BB: Option<GitProvider> = Some(GitProvider::Bitbucket);

    /// (rule, repo provider, project, backend, expected names and values)
    type Row = (
        &'static str,
        Option<GitProvider>,
        Option<&'static str>,
        Backend,
        &'static [(&'static str, &'static str)],
    );

    #[test]
    fn entitlement_follows_the_rules_table() {
        let b = bundle();
        let none = LocalOverrides::empty();
        use Backend::{AnthropicApi as Api, LocalClaude as Local};
        #[rustfmt::skip]
        let table: &[Row] = &[
            ("a GitHub job of project p1 gets org, p1 and the GitHub token only",
             GH, Some("p1"), Api, &[("ANTHROPIC_API_KEY", "vault-anthropic"), ("FLAG", "p1-flag"),
               ("GITHUB_TOKEN", "vault-gh"), ("LINEAR_MCP_TOKEN", "vault-mcp"), ("P1_ONLY", "p1-only")]),
            ("a Bitbucket job of project p2 gets the Bitbucket token and p2's values",
             BB, Some("p2"), Api, &[("ANTHROPIC_API_KEY", "vault-anthropic"), ("BITBUCKET_TOKEN", "vault-bb"),
               ("FLAG", "org-flag"), ("LINEAR_MCP_TOKEN", "vault-mcp"), ("P2_ONLY", "p2-only")]),
            ("a job without repo or project gets no git token and org values only",
             None, None, Api, &[("ANTHROPIC_API_KEY", "vault-anthropic"), ("FLAG", "org-flag"),
               ("LINEAR_MCP_TOKEN", "vault-mcp")]),
            ("a local_claude job gets no Anthropic key",
             GH, None, Local, &[("FLAG", "org-flag"), ("GITHUB_TOKEN", "vault-gh"),
               ("LINEAR_MCP_TOKEN", "vault-mcp")]),
        ];
        for (rule, provider, project, backend, want) in table {
            let set = entitled_at(&b, &none, &job(*provider, *project), *backend, NOW);
            assert_eq!(got(&set), *want, "{rule}");
        }
    }

    #[test]
    fn expired_entries_never_reach_a_job() {
        let b = bundle();
        let early = datetime!(2026-12-03 12:01 UTC);
        let none = LocalOverrides::empty();
        assert!(
            entitled_at(&b, &none, &job(None, None), Backend::AnthropicApi, early).contains("OLD")
        );
        assert!(
            !entitled_at(&b, &none, &job(None, None), Backend::AnthropicApi, NOW).contains("OLD")
        );
    }

    #[test]
    fn local_overrides_win_and_follow_the_provider_and_backend_rules() {
        let b = bundle();
        let file = crate::dotenv::parse(
            "FLAG=local-flag\nGITHUB_TOKEN=local-gh\nBITBUCKET_TOKEN=local-bb\nANTHROPIC_API_KEY=local-key\nEXTRA=local-extra\n",
            Path::new(".env"),
            |_| None,
        )
        .expect("parses");
        let o = LocalOverrides::collect(file, Vec::new(), &b.names());
        let set = entitled_at(&b, &o, &job(GH, Some("p1")), Backend::AnthropicApi, NOW);
        assert_eq!(
            got(&set),
            [
                ("ANTHROPIC_API_KEY", "local-key"),
                ("EXTRA", "local-extra"),
                ("FLAG", "local-flag"),
                ("GITHUB_TOKEN", "local-gh"),
                ("LINEAR_MCP_TOKEN", "vault-mcp"),
                ("P1_ONLY", "p1-only"),
            ]
        );
        let local = entitled_at(&b, &o, &job(None, None), Backend::LocalClaude, NOW);
        assert_eq!(
            local.names(),
            ["EXTRA", "FLAG", "LINEAR_MCP_TOKEN"],
            "no git token without a repo, no key under local_claude, even from local lines"
        );
    }

    #[test]
    fn the_redaction_set_covers_bundle_and_local_values_expired_or_not() {
        let b = bundle();
        let o = LocalOverrides::collect(
            Vec::new(),
            vec![("GITHUB_TOKEN".into(), "local-gh-token".into())],
            &b.names(),
        );
        let r = redaction_set(&b, &o);
        let text = "vault-anthropic expired local-gh-token vault-gh p2-only";
        assert_eq!(
            r.redact_str(text),
            "[REDACTED:ANTHROPIC_API_KEY] [REDACTED:OLD] [REDACTED:GITHUB_TOKEN] [REDACTED:GITHUB_TOKEN] [REDACTED:P2_ONLY]"
        );
    }
}
