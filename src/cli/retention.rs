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
use crate::engine::{enforce_shown, run_policy, run_policy_streamed, Hold, RunOptions, RunResult};
use crate::oci::{ClientOptions, Credentials, DockerConfig, RegistryClient, RequestStats};
use crate::retention::{
    InUse, JsonWriter, Policy, Protections, RepositoryPlan, TableWriter, Totals,
};

/// Exit code when a blast-radius limit stopped `apply` or `purge-project`.
pub const EXIT_BLAST_RADIUS: u8 = 3;

const EXIT_CODES: &str = "Exit codes: 0 done; 1 failure (registry unreachable, a repository could \
not be listed, a deletion failed); 2 invalid input (bad policy file, unknown field, \
purge-project without --yes); 3 a blast-radius limit stopped the run (nothing was deleted); 4 the registry rejects the \
credentials, or wants some and got none, or names a token realm not trusted with them (see \
--trust-token-realm); 5 the registry refuses the account the catalog, a \
repository or a deletion (the run stops at the first refused deletion).";

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
    /// it, REGISTRY_USERNAME/REGISTRY_PASSWORD, then the docker config file
    /// ($DOCKER_CONFIG/config.json or ~/.docker/config.json: its credential helper for the
    /// registry — credHelpers, credsStore — else its auths entry) are used.
    #[arg(long, short = 'u', env = "REGISTRY_USERNAME")]
    pub username: Option<String>,
    /// Read the password from standard input (first line).
    #[arg(long)]
    pub password_stdin: bool,
    /// Send the credentials to a Bearer token realm on HOST (repeatable). Without it they go
    /// only to the registry's own host and hosts of its registrable domain
    /// (registry-1.docker.io → auth.docker.io); a registry naming another realm is refused
    /// with exit 4, nothing sent. Credentials go out only when the registry asks (a 401).
    #[arg(long = "trust-token-realm", value_name = "HOST")]
    pub trust_token_realm: Vec<String>,
    /// Requests in flight at most.
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub concurrency: usize,
    /// A file of images to protect as if in use, one reference per line as in a Pod spec
    /// (`repo:tag`, `repo@sha256:…` or `repo:tag@sha256:…`, with or without this registry's
    /// host; a bare `repo` means `repo:latest`; `#` comments). A line that does not parse, or
    /// names another registry, is an error (exit 2).
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
    /// A run that could not plan: a refusal of the account has its own exit code.
    fn run(client: &RegistryClient, e: &crate::engine::RunError) -> Failure {
        Failure {
            code: e
                .denial()
                .map_or(super::EXIT_FAILURE, super::denial_exit_code),
            lines: vec![format!("{}: {e}", client.base_url())],
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
    if args.policy.as_os_str() == "-" && args.registry.password_stdin {
        return Err(Failure::invalid(
            "--policy - and --password-stdin both read standard input: give the policy as a file, or the password in REGISTRY_PASSWORD",
        ));
    }
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
        Verb::Policy,
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
    if !args.yes && !args.dry_run && !std::io::stdin().is_terminal() {
        return Err(Failure::invalid(
            "purge-project deletes every tag of the project: pass --yes to confirm (standard input is not a terminal, so nobody can be asked)",
        ));
    }
    let client = client(&args.registry)?;
    let protections = protections(&args.registry, &client)?;
    let concurrency = args.registry.concurrency;
    if args.dry_run || args.yes {
        let mode = if args.dry_run {
            PolicyMode::Plan
        } else {
            PolicyMode::Enforce
        };
        return execute_run(
            &client,
            &policy.with_mode(mode),
            protections,
            args.output,
            args.all,
            concurrency,
            Verb::Purge,
        );
    }
    // On a terminal: show the plan, ask, then delete exactly what was shown.
    let runtime = runtime()?;
    let (options, _) = run_options(protections.clone(), concurrency, PolicyMode::Plan);
    let shown = runtime
        .block_on(run_policy(
            &client,
            &policy.clone().with_mode(PolicyMode::Plan),
            &options,
            jiff::Timestamp::now(),
        ))
        .map_err(|e| Failure::run(&client, &e))?;
    // The preview is for the person at the terminal; standard output gets one document.
    let preview = shown.report().render_table(args.all);
    match args.output {
        Output::Table => print!("{preview}"),
        Output::Json => eprint!("{preview}"),
    }
    if let Err(b) = shown.plan.check_blast_radius() {
        return Err(blast_radius_failure(&b, Verb::Purge));
    }
    if let Some((denial, why)) = shown.denial() {
        return Err(Failure {
            code: super::denial_exit_code(denial),
            lines: vec![format!("{why}; nothing deleted")],
        });
    }
    if shown.plan.counts.errors > 0 {
        return Err(Failure::failed(format!(
            "{}; nothing deleted — purge a project only when all of it can be read",
            shown.incomplete_line(5).unwrap_or_default()
        )));
    }
    if shown.plan.counts.deletions == 0 {
        eprintln!("nothing to delete");
        return Ok(0);
    }
    eprint!(
        "Delete these {} tags of project {project}? Type 'yes' to confirm: ",
        shown.plan.counts.deletions
    );
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
    let (options, bar) = run_options(protections, concurrency, PolicyMode::Enforce);
    let result = runtime
        .block_on(enforce_shown(&client, &policy, &options, shown))
        .map_err(|e| Failure::run(&client, &e))?;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    conclude(&result, args.output, args.all, Verb::Purge)
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
        .map_err(|e| Failure::invalid(format!("reading {}: {e}", path.display())))
}

/// Parses a RetentionPolicy manifest strictly; returns `namespace/name` and its rules, or one
/// line per problem.
pub fn parse_policy(text: &str) -> Result<(String, RetentionRules), Vec<String>> {
    let schema = strict::crd_schema::<RetentionPolicy>();
    let (policy, namespace, name) = strict::read_resource::<RetentionPolicy>(text, &schema)?;
    Ok((format!("{namespace}/{name}"), policy.spec.rules))
}

fn client(args: &RegistryArgs) -> Result<RegistryClient, Failure> {
    let url = crate::oci::parse_base_url(&args.registry)
        .map_err(|e| Failure::invalid(format!("--registry: {e}")))?;
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
        (None, false) => match DockerConfig::load_default()
            .map_err(|e| Failure::invalid(format!("docker config: {e}")))?
        {
            Some(config) => config
                .resolve(&host)
                .map_err(|e| Failure::invalid(format!("docker config: {e}")))?
                .unwrap_or_default(),
            None => Credentials::Anonymous,
        },
    };
    let options = ClientOptions {
        max_concurrency: args.concurrency.max(1),
        trusted_token_realms: args.trust_token_realm.clone(),
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
        .map_err(|e| Failure::invalid(format!("--in-use: reading {}: {e}", path.display())))?;
    let host = client.host();
    let mut problems = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let by = format!("{}:{}", path.display(), n + 1);
        match in_use_reference(line, &host) {
            Ok((repo, tag, digest)) => {
                if let Some(t) = tag {
                    in_use.add_tag(&repo, &t, &by);
                }
                if let Some(d) = digest {
                    in_use.add_digest(&repo, &d, &by);
                }
            }
            Err(why) => problems.push(format!("{by}: {line:?}: {why}")),
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

/// One line of an `--in-use` file — `[host/]repo[:tag][@digest]`, as written in a Pod spec —
/// as repository, tag and digest of this registry (`host`). A reference without a host is
/// this registry's; without tag or digest it means `:latest`, as for a container runtime. A
/// reference to another registry, or one that does not parse (a truncated or upper-case
/// digest, say), is an error: a protection that silently protects nothing is worse than none.
fn in_use_reference(
    line: &str,
    host: &str,
) -> Result<(String, Option<String>, Option<String>), String> {
    use crate::oci::host::image_host;
    let this = image_host(host);
    // The first path component names a registry when it is this one's host (in any
    // spelling: a single-label host such as `zot` has no dot to show it) or looks like a host.
    let (first, rest) = line.split_once('/').unwrap_or(("", line));
    let names_host = !first.is_empty()
        && (image_host(first) == this
            || first.contains('.')
            || first.contains(':')
            || first == "localhost");
    if names_host && image_host(first) != this {
        return Err(format!(
            "names registry {first}, not this one ({host}); list only this registry's images"
        ));
    }
    let path = if names_host { rest } else { line };
    // Parsed under a placeholder host, so that no Docker Hub rule (`library/`) applies.
    let r = crate::oci::ImageReference::parse(&format!("registry.invalid/{path}"))
        .map_err(|e| e.to_string().replace("registry.invalid/", ""))?;
    let tag = r.tag_or_default().map(str::to_string);
    Ok((r.repository, tag, r.digest))
}

/// Which command runs, for messages that name its settings.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Verb {
    /// `retention plan|apply`: the limits are the policy file's.
    Policy,
    /// `purge-project`: the limit is `--max-deletions`.
    Purge,
}

/// Plans (and, in Enforce mode, executes) and prints the outcome; returns the exit code.
///
/// The table and the JSON document are written as the repositories are planned, and the
/// run holds only what it may delete: memory does not grow with the number of repositories.
/// After `apply -o json` each deleted tag's decision carries its outcome, which is known only
/// once the deletions ran: that document is written from a run that holds every decision.
fn execute_run(
    client: &RegistryClient,
    policy: &Policy,
    protections: Protections,
    output: Output,
    all: bool,
    concurrency: usize,
    verb: Verb,
) -> Result<u8, Failure> {
    let runtime = runtime()?;
    let (mut options, bar) = run_options(protections, concurrency, policy.mode());
    let now = jiff::Timestamp::now();
    if policy.mode() == PolicyMode::Enforce && output == Output::Json {
        let result = runtime
            .block_on(run_policy(client, policy, &options, now))
            .map_err(|e| Failure::run(client, &e))?;
        if let Some(bar) = &bar {
            bar.finish_and_clear();
        }
        return conclude(&result, output, all, verb);
    }
    options.hold = Hold::Deletions;
    let stdout = std::io::BufWriter::new(std::io::stdout());
    let mut writer = match output {
        Output::Table => Streamed::Table(TableWriter::new(stdout, policy.mode(), all)),
        Output::Json => Streamed::Json(
            JsonWriter::new(stdout, policy.name(), policy.mode(), now).map_err(write_failure)?,
        ),
    };
    let mut written: std::io::Result<()> = Ok(());
    let run = runtime.block_on(run_policy_streamed(
        client,
        policy,
        &options,
        now,
        &mut |repository: &RepositoryPlan| {
            if written.is_ok() {
                written = match &mut writer {
                    Streamed::Table(t) => t.repository(repository),
                    Streamed::Json(j) => j.repository(repository),
                };
            }
        },
    ));
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let result = run.map_err(|e| Failure::run(client, &e))?;
    written.map_err(write_failure)?;
    let totals = Totals::of(
        &result.plan,
        result.incomplete.clone(),
        result.plan_digest.clone(),
    );
    match writer {
        Streamed::Table(t) => {
            let mut out = t
                .finish(&result.plan.policy, &totals)
                .map_err(write_failure)?;
            if let Some(e) = &result.execution {
                let mut text = format!("\napplied: {}\n", e.headline());
                for item in e.problems() {
                    text.push_str(&format!("  {}: {}\n", item.mutation, item.result));
                }
                out.write_all(text.as_bytes())
                    .and_then(|()| out.flush())
                    .map_err(write_failure)?;
            }
        }
        Streamed::Json(j) => {
            j.finish(&totals, &[("requests", requests_document(&result))])
                .map_err(write_failure)?;
        }
    }
    eprintln!("{}", requests_summary(&result));
    verdict(&result, verb)
}

/// Where a streamed run writes its output.
enum Streamed<W: Write> {
    Table(TableWriter<W>),
    Json(JsonWriter<W>),
}

fn write_failure(e: std::io::Error) -> Failure {
    Failure::failed(format!("writing output: {e}"))
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::failed(format!("starting the runtime: {e}")))
}

/// Run options for `concurrency` requests in flight; in `Enforce` mode on a terminal, with a
/// progress bar (returned so the caller can clear it).
fn run_options(
    protections: Protections,
    concurrency: usize,
    mode: PolicyMode,
) -> (RunOptions, Option<indicatif::ProgressBar>) {
    let mut options = RunOptions {
        protections,
        ..RunOptions::default()
    };
    let n = concurrency.clamp(1, 64);
    options.collect.repositories_in_flight = n;
    options.collect.lookups_in_flight = n;
    options.execute.repositories_in_flight = n;
    options.execute.deletions_in_flight = n;
    let bar = (mode == PolicyMode::Enforce && std::io::stderr().is_terminal()).then(|| {
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
    (options, bar)
}

/// Prints a run's outcome; the exit code, or the failure that sets it.
fn conclude(result: &RunResult, output: Output, all: bool, verb: Verb) -> Result<u8, Failure> {
    print_result(result, output, all)?;
    verdict(result, verb)
}

/// The exit code of a run whose outcome was printed, or the failure that sets it.
fn verdict(result: &RunResult, verb: Verb) -> Result<u8, Failure> {
    if let Some(b) = &result.blocked {
        return Err(blast_radius_failure(b, verb));
    }
    if let Some((denial, why)) = result.denial() {
        let line = match denial {
            crate::oci::Denial::PermissionDenied(crate::oci::Refused::Delete) => format!(
                "{why}; stopped at the first refused deletion: the account may read (plan works) but not delete"
            ),
            _ => why,
        };
        return Err(Failure {
            code: super::denial_exit_code(denial),
            lines: vec![line],
        });
    }
    let failed_items = result.execution.as_ref().map_or(0, |e| e.counts.errors);
    let incomplete = result.plan.counts.errors;
    let incomplete_line = |r: &RunResult| r.incomplete_line(5).unwrap_or_default();
    match (incomplete, failed_items) {
        (0, 0) => Ok(0),
        (0, n) => Err(Failure::failed(format!("{n} deletions failed"))),
        (_, 0) => Err(Failure::failed(incomplete_line(result))),
        (_, n) => Err(Failure::failed(format!(
            "{}; {n} deletions failed",
            incomplete_line(result)
        ))),
    }
}

fn blast_radius_failure(b: &crate::retention::LimitBreach, verb: Verb) -> Failure {
    let setting = match verb {
        Verb::Policy => b.field().to_string(),
        Verb::Purge => "--max-deletions".to_string(),
    };
    Failure {
        code: EXIT_BLAST_RADIUS,
        lines: vec![format!(
            "blast radius: {b}; nothing was deleted (raise {setting} to allow it)"
        )],
    }
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
            if let Some(e) = &result.execution {
                // Each deleted (or skipped, or failed) tag says how its deletion ended.
                let mut outcome: std::collections::HashMap<(&str, &str), String> =
                    std::collections::HashMap::new();
                for item in &e.items {
                    let (repo, tags): (&str, Vec<&str>) = match &item.mutation {
                        crate::retention::Mutation::DeleteTag {
                            repository, tag, ..
                        } => (repository, vec![&**tag]),
                        crate::retention::Mutation::DeleteManifest {
                            repository, tags, ..
                        } => (repository, tags.iter().map(|t| &**t).collect()),
                    };
                    for tag in tags {
                        outcome.insert((repo, tag), item.result.to_string());
                    }
                }
                if let Some(decisions) = v.get_mut("decisions").and_then(|d| d.as_array_mut()) {
                    for d in decisions {
                        let key = (
                            d["repository"].as_str().unwrap_or_default(),
                            d["tag"].as_str().unwrap_or_default(),
                        );
                        if let Some(o) = outcome.get(&key) {
                            let o = o.clone();
                            if let Some(obj) = d.as_object_mut() {
                                obj.insert("outcome".to_string(), o.into());
                            }
                        }
                    }
                }
            }
            if let (Some(e), Some(map)) = (&result.execution, v.as_object_mut()) {
                let c = e.counts;
                map.insert(
                    "execution".to_string(),
                    serde_json::json!({
                        "deletedTags": c.deleted_tags,
                        "deletedManifests": c.deleted_manifests,
                        "alreadyGone": c.already_gone,
                        "skippedChanged": c.changed,
                        "skippedInUse": c.in_use,
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
                map.insert("requests".to_string(), requests_document(result));
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
    eprintln!("{}", requests_summary(result));
    Ok(())
}

/// The `requests` member of the JSON document.
fn requests_document(result: &RunResult) -> serde_json::Value {
    serde_json::json!({
        "collect": requests_json(&result.collect_requests),
        "execute": requests_json(&result.execute_requests),
    })
}

/// `requests: collect …; execute …`, for standard error.
fn requests_summary(result: &RunResult) -> String {
    format!(
        "requests: collect {}; execute {}",
        requests_line(&result.collect_requests),
        requests_line(&result.execute_requests)
    )
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
    fn in_use_references_name_repository_tag_and_digest_as_in_a_pod_spec() {
        let host = "127.0.0.1:5000";
        let d = format!("sha256:{}", "ab".repeat(32));
        let own = |s: &str| in_use_reference(s, host).unwrap();
        let some = |s: &str| Some(s.to_string());
        assert_eq!(
            own("team-a/web:v1"),
            ("team-a/web".into(), some("v1"), None)
        );
        assert_eq!(
            own(&format!("127.0.0.1:5000/team-a/web@{d}")),
            ("team-a/web".into(), None, some(&d))
        );
        // pinned tag@digest, the usual form in manifests: both are protected
        assert_eq!(
            own(&format!("127.0.0.1:5000/team-a/web:v1@{d}")),
            ("team-a/web".into(), some("v1"), some(&d))
        );
        assert_eq!(own("web"), ("web".into(), some("latest"), None));
        let err = |s: &str| in_use_reference(s, host).unwrap_err();
        assert!(err("other.example.com/team-a/web:v1").contains("not this one"));
        // truncated and upper-case digests protect nothing, so they are errors
        assert!(err("team-a/web@sha256:3300b91715790").contains("64 lowercase hex"));
        assert!(err(&format!("team-a/web@{}", d.to_uppercase())).contains("digest"));
        assert!(err("team-a/web:").contains("tag"));
        // a single-label host (no dot, no port) is recognised as this registry's
        let zot = |s: &str| in_use_reference(s, "zot").unwrap();
        assert_eq!(zot("zot/web:v1"), ("web".into(), some("v1"), None));
        assert_eq!(zot("team/web:v1"), ("team/web".into(), some("v1"), None));
        assert!(in_use_reference("other.io/web:v1", "zot").is_err());
    }

    #[test]
    fn a_policy_file_with_an_unknown_field_is_rejected_with_its_path() {
        let text = "apiVersion: registry-operator.dev/v1alpha1\nkind: RetentionPolicy\nmetadata: {name: p}\nspec:\n  registryRef: {name: r}\n  mode: Plan\n  repositories: {include: ['**']}\n  keepp: []\n";
        let problems = parse_policy(text).unwrap_err();
        assert!(problems.iter().any(|p| p.contains("keepp")), "{problems:?}");
    }
}
