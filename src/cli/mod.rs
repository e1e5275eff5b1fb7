//! Command-line entry points. Each command group lives in its own file; this module only parses
//! and dispatches. Exit codes: 0 success, 1 failure while working, 2 invalid input, 3 a
//! retention blast-radius limit stopped the run, 4 the registry rejects the credentials (or
//! wants some and got none, or names a token realm not trusted with them), 5 the registry refuses the account what was asked (the catalog,
//! a repository, a deletion).

pub mod crd;
mod dev;
mod registry;
pub mod render;
pub mod retention;
pub mod run;
mod strict;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code for invalid input (bad YAML, unknown field, rule violated).
pub const EXIT_INVALID: u8 = 2;
/// Exit code for failures while working (registry unreachable, I/O).
pub const EXIT_FAILURE: u8 = 1;
/// Exit code when the registry rejects the credentials, or wants some and got none (401), or
/// sends the client to a token realm not trusted with them (nothing was sent there).
pub const EXIT_CREDENTIALS: u8 = 4;
/// Exit code when the registry refuses the account what was asked (403): the catalog, a
/// repository, a deletion.
pub const EXIT_PERMISSION: u8 = 5;

/// The exit code for a registry's refusal of the account.
pub fn denial_exit_code(denial: crate::oci::Denial) -> u8 {
    match denial {
        crate::oci::Denial::PermissionDenied(_) => EXIT_PERMISSION,
        crate::oci::Denial::CredentialsRejected
        | crate::oci::Denial::CredentialsRequired
        | crate::oci::Denial::UntrustedTokenRealm => EXIT_CREDENTIALS,
    }
}

/// Deploys zot registries and enforces tag retention on OCI registries.
#[derive(Parser, Debug)]
#[command(name = "registry-operator", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write the CustomResourceDefinitions generated from the API types.
    Crd(crd::CrdArgs),
    /// Print the zot config and the Kubernetes objects a Registry manifest would produce.
    Render(render::RenderArgs),
    /// Run the operator (in-cluster config or KUBECONFIG) until SIGTERM.
    Run(run::RunArgs),
    /// Talk to an OCI registry: `check` its health, `ls` repositories and tags.
    Registry(registry::RegistryArgs),
    /// Plan or apply a RetentionPolicy file against a registry.
    Retention(retention::RetentionArgs),
    /// Delete every tag of a project's repositories (P and P/**), except protected ones.
    PurgeProject(retention::PurgeArgs),
    /// Seed a registry with small synthetic images (`dev seed`): what the demo and the
    /// retention benchmark run against, for trying a policy on a scratch registry.
    Dev(dev::DevArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish or powershell) to standard
    /// output, e.g. `registry-operator completion bash > /etc/bash_completion.d/registry-operator`.
    Completion {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the version of this build.
    Version,
}

/// The completion script for `shell`. clap_complete's bash script names the state of a
/// subcommand in two ways when the program's name has a `-` (`registry__operator__subcmd__x`
/// where it walks the words, `registry__subcmd__operator__subcmd__x` where it lists the
/// choices), so nothing below the first word would complete: the second spelling is made the
/// first.
pub fn completion_script(shell: clap_complete::Shell) -> String {
    use clap::CommandFactory as _;
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "registry-operator", &mut out);
    let script = String::from_utf8_lossy(&out).into_owned();
    match shell {
        clap_complete::Shell::Bash => {
            script.replace("registry__subcmd__operator", "registry__operator")
        }
        _ => script,
    }
}

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Crd(args) => crd::run(&args),
        Command::Render(args) => render::run(&args),
        Command::Run(args) => run::run(args),
        Command::Registry(args) => registry::run(args),
        Command::Retention(args) => retention::run(args),
        Command::PurgeProject(args) => retention::run_purge(args),
        Command::Dev(args) => dev::run(args),
        Command::Completion { shell } => {
            use std::io::Write as _;
            match std::io::stdout().write_all(completion_script(shell).as_bytes()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: writing the completion script: {e}");
                    ExitCode::from(EXIT_FAILURE)
                }
            }
        }
        Command::Version => {
            println!("registry-operator {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
    }
}
