//! `registry-operator retention plan|apply` and `registry-operator purge-project`: the
//! retention engine from a terminal or a CI job, against any OCI registry.
//!
//! The policy file is a `RetentionPolicy` manifest, read strictly. The verb decides the mode
//! (`spec.mode` is ignored here): `plan` never sends a mutating request, `apply` deletes —
//! the verb is the consent, so it never prompts. `purge-project` asks on a terminal unless
//! `--yes`, and refuses without `--yes` when standard input is not a terminal.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand, ValueEnum};

use super::strict;
use crate::api::retention::{
    Limits as LimitsSpec, PolicyMode, RepositoryScope, RetentionPolicy, RetentionRules,
};
use crate::engine::{run_policy, RunOptions, RunResult};
use crate::oci::{ClientOptions, Credentials, DockerConfig, RegistryClient, RequestStats};
use crate::retention::{InUse, Policy, Protections};

/// Exit code when a blast-radius limit stopped `apply` or `purge-project`.
pub const EXIT_BLAST_RADIUS: u8 = 3;

const EXIT_CODES: &str = "Exit codes: 0 done; 1 failure (registry unreachable, a repository could \
not be listed, a deletion failed); 2 invalid input (bad policy file, unknown field, missing \
--yes); 3 a blast-radius limit stopped the run (nothing was deleted).";

/// Output formats of a plan.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// A table of the tags not kept by a keep entry (all tags with `--all`) and a summary.
    #[default]
    Table,
    /// The whole report as JSON.
    Json,
}

/// How to reach the registry.
#[derive(Args, Debug, Clone)]
pub struct RegistryArgs {
    /// Registry base URL, e.g. https://registry.example.com or http://127.0.0.1:5000.
    #[arg(long, value_name = "URL")]
    pub registry: String,
    /// User name (the password comes from --password-stdin or REGISTRY_PASSWORD). Without
    /// it, REGISTRY_USERNAME/REGISTRY_PASSWORD, then the docker config file, are used.
    #[arg(long, short = 'u', env = "REGISTRY_USERNAME")]
    pub username: Option<String>,
    /// Read the password from standard input (first line).
    #[arg(long)]
    pub password_stdin: bool,
    /// Requests in flight at most.
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub concurrency: usize,
    /// A file of images to protect as if in use, one reference per line
    /// (`repo:tag` or `repo@sha256:…`, with or without the registry host; `#` comments).
    #[arg(long, value_name = "FILE")]
    pub in_use: Option<PathBuf>,
}

/// Arguments of `retention plan` and `retention apply`.
#[derive(Args, Debug, Clone)]
pub struct PolicyArgs {
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// The RetentionPolicy manifest (YAML); `-` reads standard input.
    #[arg(long, short = 'p', value_name = "FILE")]
    pub policy: PathBuf,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Show every tag in the table, kept ones included.
    #[arg(long)]
    pub all: bool,
}

/// `retention` subcommands.
#[derive(Subcommand, Debug)]
pub enum RetentionCommand {
    /// Show what a policy would delete and why; sends no mutating request.
    #[command(after_help = EXIT_CODES)]
    Plan(PolicyArgs),
    /// Make the same plan, then delete what it says (the verb is the consent: no prompt).
    #[command(after_help = EXIT_CODES)]
    Apply(PolicyArgs),
}

/// Arguments of `retention`.
#[derive(Args, Debug)]
pub struct RetentionArgs {
    #[command(subcommand)]
    pub command: RetentionCommand,
}

/// Arguments of `purge-project`.
#[derive(Args, Debug)]
#[command(after_help = EXIT_CODES)]
pub struct PurgeArgs {
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// The project: the repository `P` and every repository under `P/`.
    #[arg(long, value_name = "P")]
    pub project: String,
    /// Do not ask for confirmation (required when standard input is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Only show what would be deleted.
    #[arg(long)]
    pub dry_run: bool,
    /// Refuse (delete nothing) when more tags than this would go.
    #[arg(long, default_value_t = 500, value_name = "N")]
    pub max_deletions: i32,
    /// Grace period: tags pushed more recently than this are kept.
    #[arg(long, default_value = "1h", value_name = "DURATION")]
    pub min_age: String,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Show every tag in the table.
    #[arg(long)]
    pub all: bool,
}

/// A failure with its exit code.
struct Failure {
    code: u8,
    lines: Vec<String>,
}

impl Failure {
    fn invalid(line: impl Into<String>) -> Failure {
        Failure {
            code: super::EXIT_INVALID,
            lines: vec![line.into()],
        }
    }
    fn failed(line: impl Into<String>) -> Failure {
        Failure {
            code: super::EXIT_FAILURE,
            lines: vec![line.into()],
        }
    }
}

fn finish(result: Result<u8, Failure>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            for line in f.lines {
                eprintln!("error: {line}");
            }
            ExitCode::from(f.code)
        }
    }
}

/// Runs `retention plan|apply`.
pub fn run(args: RetentionArgs) -> ExitCode {
    let (args, mode) = match args.command {
        RetentionCommand::Plan(a) => (a, PolicyMode::Plan),
        RetentionCommand::Apply(a) => (a, PolicyMode::Enforce),
    };
    finish(run_retention(&args, mode))
}

fn run_retention(args: &PolicyArgs, mode: PolicyMode) -> Result<u8, Failure> {
    let text = read_input(&args.policy)?;
    let (name, rules) = parse_policy(&text).map_err(|lines| Failure {
        code: super::EXIT_INVALID,
        lines,
    })?;
    let policy = Policy::compile(&name, &rules)
        .map_err(|e| Failure {
            code: super::EXIT_INVALID,
            lines: e.errors.iter().map(|p| format!("{name}: {p}")).collect(),
        })?
        .with_mode(mode);
    let client = client(&args.registry)?;
    let protections = protections(&args.registry, &client)?;
    execute_run(
        &client,
        &policy,
        protections,
        args.output,
        args.all,
        args.registry.concurrency,
    )
}

/// Runs `purge-project`.
pub fn run_purge(args: PurgeArgs) -> ExitCode {
    finish(purge(&args))
}

fn purge(args: &PurgeArgs) -> Result<u8, Failure> {
    let project = args.project.trim_matches('/');
    if project.is_empty() || project.contains('*') {
        return Err(Failure::invalid(
            "--project: a repository path without globs is required",
        ));
    }
    crate::oci::reference::validate_repository(project)
        .map_err(|e| Failure::invalid(format!("--project: {e}")))?;
    let rules = RetentionRules {
        mode: PolicyMode::Plan,
        schedule: None,
        suspend: None,
        repositories: RepositoryScope {
            include: vec![project.to_string(), format!("{project}/**")],
            exclude: Vec::new(),
        },
        keep: Vec::new(),
        protect: Some(crate::api::retention::Protection {
            in_use: Some(true),
            min_age: Some(args.min_age.clone()),
        }),
        delete_referrers: Some(true),
        limits: Some(LimitsSpec {
            max_deletions_per_run: Some(args.max_deletions),
            max_deletion_percent: None,
        }),
        purge: Some(true),
    };
    let name = format!("purge-project {project}");
    let policy = Policy::compile(&name, &rules).map_err(|e| Failure {
        code: super::EXIT_INVALID,
        lines: e.errors.iter().map(|p| p.to_string()).collect(),
    })?;
    let client = client(&args.registry)?;
    let protections = protections(&args.registry, &client)?;
    if args.dry_run {
        return execute_run(
            &client,
            &policy.with_mode(PolicyMode::Plan),
            protections,
            args.output,
            args.all,
            args.registry.concurrency,
        );
    }
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            return Err(Failure::invalid(
                "purge-project deletes every tag of the project: pass --yes to confirm (standard input is not a terminal, so nobody can be asked)",
            ));
        }
        // Show the plan first, then ask.
        let code = execute_run(
            &client,
            &policy.clone().with_mode(PolicyMode::Plan),
            protections.clone(),
            args.output,
            args.all,
            args.registry.concurrency,
        )?;
        if code != 0 {
            return Ok(code);
        }
        eprint!("Delete these tags of project {project}? Type 'yes' to confirm: ");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut answer)
            .map_err(|e| Failure::failed(format!("reading the answer: {e}")))?;
        if answer.trim() != "yes" {
            eprintln!("nothing deleted");
            return Ok(0);
        }
    }
    execute_run(
        &client,
        &policy.with_mode(PolicyMode::Enforce),
        protections,
        args.output,
        args.all,
        args.registry.concurrency,
    )
}

fn read_input(path: &Path) -> Result<String, Failure> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Failure::failed(format!("reading standard input: {e}")))?;
        return Ok(text);
    }
    std::fs::read_to_string(path)
        .map_err(|e| Failure::failed(format!("reading {}: {e}", path.display())))
}

/// Parses a RetentionPolicy manifest strictly; returns `namespace/name` and its rules, or one
/// line per problem.
pub fn parse_policy(text: &str) -> Result<(String, RetentionRules), Vec<String>> {
    let schema = strict::crd_schema::<RetentionPolicy>();
    let (policy, namespace, name) = strict::read_resource::<RetentionPolicy>(text, &schema)?;
    Ok((format!("{namespace}/{name}"), policy.spec.rules))
}

fn client(args: &RegistryArgs) -> Result<RegistryClient, Failure> {
    let url = url::Url::parse(&args.registry)
        .map_err(|e| Failure::invalid(format!("--registry: not a URL: {e}")))?;
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => return Err(Failure::invalid("--registry: the URL has no host")),
    };
    let password_env = std::env::var("REGISTRY_PASSWORD").ok();
    let credentials = match (&args.username, args.password_stdin) {
        (Some(user), true) => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| Failure::failed(format!("reading the password: {e}")))?;
            Credentials::basic(
                user.clone(),
                line.trim_end_matches(['\r', '\n']).to_string(),
            )
        }
        (None, true) => {
            return Err(Failure::invalid(
                "--password-stdin needs --username (or REGISTRY_USERNAME)",
            ))
        }
        (Some(user), false) => match password_env {
            Some(p) => Credentials::basic(user.clone(), p),
            None => {
                return Err(Failure::invalid(
                    "--username needs a password: --password-stdin or REGISTRY_PASSWORD",
                ))
            }
        },
        (None, false) => DockerConfig::load_default()
            .map_err(|e| Failure::invalid(format!("docker config: {e}")))?
            .and_then(|c| c.credentials_for(&host).ok().flatten())
            .unwrap_or_default(),
    };
    let options = ClientOptions {
        max_concurrency: args.concurrency.max(1),
        ..ClientOptions::default()
    };
    RegistryClient::new(&args.registry, credentials, options)
        .map_err(|e| Failure::invalid(format!("--registry: {e}")))
}

/// Reads `--in-use`: one reference per line; the host, when given, must be this registry's.
fn protections(args: &RegistryArgs, client: &RegistryClient) -> Result<Protections, Failure> {
    let mut in_use = InUse::new();
    let Some(path) = &args.in_use else {
        return Ok(Protections { in_use });
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::failed(format!("reading {}: {e}", path.display())))?;
    let host = client.host();
    let mut problems = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let by = format!("{}:{}", path.display(), n + 1);
        match split_reference(line, &host) {
            Some((repo, Reference::Tag(t))) => in_use.add_tag(&repo, &t, &by),
            Some((repo, Reference::Digest(d))) => in_use.add_digest(&repo, &d, &by),
            None => problems.push(format!(
                "{by}: {line:?} is not repo:tag or repo@digest of this registry"
            )),
        }
    }
    if problems.is_empty() {
        Ok(Protections { in_use })
    } else {
        Err(Failure {
            code: super::EXIT_INVALID,
            lines: problems,
        })
    }
}

enum Reference {
    Tag(String),
    Digest(String),
}

/// `[host/]repo:tag` or `[host/]repo@digest` → repository and reference; `None` when the
/// host is another registry's or there is no reference.
fn split_reference(s: &str, host: &str) -> Option<(String, Reference)> {
    let (name, reference) = match s.split_once('@') {
        Some((n, d)) => (n, Reference::Digest(d.to_string())),
        None => {
            let slash = s.rfind('/').map_or(0, |i| i + 1);
            let colon = s[slash..].rfind(':')? + slash;
            (&s[..colon], Reference::Tag(s[colon + 1..].to_string()))
        }
    };
    let name = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            if first != host {
                return None;
            }
            rest
        }
        _ => name,
    };
    (!name.is_empty()).then(|| (name.to_string(), reference))
}

/// Plans (and, in Enforce mode, executes) and prints the outcome; returns the exit code.
fn execute_run(
    client: &RegistryClient,
    policy: &Policy,
    protections: Protections,
    output: Output,
    all: bool,
    concurrency: usize,
) -> Result<u8, Failure> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::failed(format!("starting the runtime: {e}")))?;
    let mut options = RunOptions {
        protections,
        ..RunOptions::default()
    };
    options.collect.repositories_in_flight = concurrency.clamp(1, 64);
    options.collect.lookups_in_flight = concurrency.clamp(1, 64);
    options.execute.repositories_in_flight = concurrency.clamp(1, 64);
    options.execute.deletions_in_flight = concurrency.clamp(1, 64);
    let bar =
        (policy.mode() == PolicyMode::Enforce && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} deleting [{bar:30}] {pos}/{len} {elapsed}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar
        });
    if let Some(bar) = &bar {
        let b = bar.clone();
        options.execute.progress = Some(Arc::new(move |n, total| {
            b.set_length(total);
            b.inc(n);
        }));
    }
    let now = jiff::Timestamp::now();
    let result = runtime
        .block_on(run_policy(client, policy, &options, now))
        .map_err(|e| Failure::failed(format!("{}: {e}", client.base_url())))?;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    print_result(&result, output, all)?;
    if let Some(b) = &result.blocked {
        return Err(Failure {
            code: EXIT_BLAST_RADIUS,
            lines: vec![format!(
                "blast radius: {b}; nothing was deleted (raise {} to allow it)",
                b.field()
            )],
        });
    }
    let failed_items = result.execution.as_ref().map_or(0, |e| e.counts.errors);
    let incomplete = result.plan.counts.errors;
    if failed_items > 0 || incomplete > 0 {
        return Err(Failure::failed(format!(
            "{incomplete} repositories could not be listed completely (left untouched), {failed_items} deletions failed"
        )));
    }
    Ok(0)
}

fn print_result(result: &RunResult, output: Output, all: bool) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    let text = match output {
        Output::Table => {
            let mut t = result.report().render_table(all);
            if let Some(e) = &result.execution {
                t.push_str(&format!("\napplied: {}\n", e.headline()));
                for item in e.problems() {
                    t.push_str(&format!("  {}: {}\n", item.mutation, item.result));
                }
            }
            t
        }
        Output::Json => {
            let mut v = serde_json::to_value(result.report())
                .map_err(|e| Failure::failed(format!("serialising the report: {e}")))?;
            if let (Some(e), Some(map)) = (&result.execution, v.as_object_mut()) {
                let c = e.counts;
                map.insert(
                    "execution".to_string(),
                    serde_json::json!({
                        "deletedTags": c.deleted_tags,
                        "deletedManifests": c.deleted_manifests,
                        "alreadyGone": c.already_gone,
                        "skippedChanged": c.changed,
                        "skippedBlocked": c.blocked,
                        "errors": c.errors,
                        "problems": e.problems().map(|i| serde_json::json!({
                            "mutation": i.mutation.to_string(),
                            "result": i.result.to_string(),
                        })).collect::<Vec<_>>(),
                    }),
                );
            }
            if let Some(map) = v.as_object_mut() {
                map.insert(
                    "requests".to_string(),
                    serde_json::json!({
                        "collect": requests_json(&result.collect_requests),
                        "execute": requests_json(&result.execute_requests),
                    }),
                );
            }
            serde_json::to_string_pretty(&v)
                .map(|s| s + "\n")
                .map_err(|e| Failure::failed(format!("serialising the report: {e}")))?
        }
    };
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| Failure::failed(format!("writing output: {e}")))?;
    eprintln!(
        "requests: collect {}; execute {}",
        requests_line(&result.collect_requests),
        requests_line(&result.execute_requests)
    );
    Ok(())
}

fn requests_json(s: &RequestStats) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for (op, n) in &s.by_operation {
        if *n > 0 {
            m.insert(op.as_str().to_string(), (*n).into());
        }
    }
    m.insert("total".to_string(), s.total.into());
    m.insert("mutating".to_string(), s.mutating.into());
    serde_json::Value::Object(m)
}

/// `1234 requests (GetManifest 1000, GetBlob 200, …), 0 mutating`.
pub fn requests_line(s: &RequestStats) -> String {
    let parts: Vec<String> = s
        .by_operation
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(op, n)| format!("{op} {n}"))
        .collect();
    format!(
        "{} requests ({}), {} mutating",
        s.total,
        parts.join(", "),
        s.mutating
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_use_references_name_repository_and_tag_or_digest() {
        let host = "127.0.0.1:5000";
        let (r, t) = split_reference("team-a/web:v1", host).unwrap();
        assert_eq!(r, "team-a/web");
        assert!(matches!(t, Reference::Tag(t) if t == "v1"));
        let (r, d) = split_reference("127.0.0.1:5000/team-a/web@sha256:aa", host).unwrap();
        assert_eq!(r, "team-a/web");
        assert!(matches!(d, Reference::Digest(d) if d == "sha256:aa"));
        assert!(split_reference("other.example.com/team-a/web:v1", host).is_none());
        assert!(split_reference("team-a/web", host).is_none());
    }

    #[test]
    fn a_policy_file_with_an_unknown_field_is_rejected_with_its_path() {
        let text = "apiVersion: registry-operator.dev/v1alpha1\nkind: RetentionPolicy\nmetadata: {name: p}\nspec:\n  registryRef: {name: r}\n  mode: Plan\n  repositories: {include: ['**']}\n  keepp: []\n";
        let problems = parse_policy(text).unwrap_err();
        assert!(problems.iter().any(|p| p.contains("keepp")), "{problems:?}");
    }
}
