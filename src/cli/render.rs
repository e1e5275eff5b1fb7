//! `registry-operator render`: print the zot config and the Kubernetes objects a Registry
//! manifest would produce, without a cluster.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::OnceLock;

use clap::{Args, ValueEnum};

use super::strict;
use crate::api::registry::Registry;
use crate::controller::context::{parse_cluster_domain, DEFAULT_CLUSTER_DOMAIN};
use crate::controller::registry::builders::{desired_registry, DesiredRegistry, RegistryRef};

/// Output formats of `render`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A YAML stream: the zot config first, then one document per object.
    #[default]
    Yaml,
    /// A JSON list: the zot config first, then the objects (with `--only config`: exactly
    /// the bytes of `config.json`).
    Json,
}

/// What `render` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Only {
    /// Only zot's `config.json`.
    Config,
    /// Only the Kubernetes objects (e.g. to pipe into a schema validator).
    Objects,
}

/// Arguments of `registry-operator render`.
#[derive(Args, Debug)]
pub struct RenderArgs {
    /// The Registry manifest (YAML or JSON); `-` reads standard input.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: PathBuf,
    /// Render for this zot release instead of `spec.version`, e.g. v2.1.20.
    #[arg(long = "zot-version", value_name = "VERSION")]
    pub zot_version: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Yaml)]
    pub output: Format,
    /// Print only the zot config or only the Kubernetes objects.
    #[arg(long = "only", value_enum)]
    pub only: Option<Only>,
    /// The cluster's DNS domain (names zot's cluster members when replicas > 1).
    #[arg(long = "cluster-domain", value_name = "DOMAIN", default_value = DEFAULT_CLUSTER_DOMAIN, value_parser = parse_cluster_domain)]
    pub cluster_domain: String,
}

/// Why `render` failed.
enum Failure {
    /// Invalid input: one line per problem (exit 2).
    Invalid(Vec<String>),
    /// Could not read or write (exit 1).
    Io(String),
}

/// Runs `render`: exit 0 with the output, 2 with one line per problem on invalid input, 1 when
/// the file cannot be read.
pub fn run(args: &RenderArgs) -> ExitCode {
    let output = read(args).and_then(|text| {
        let desired = parse_and_render(&text, args.zot_version.as_deref(), &args.cluster_domain)?;
        format_output(&desired, args.output, args.only)
    });
    match output {
        Ok(text) => {
            let mut stdout = std::io::stdout().lock();
            match stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
            {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: writing output: {e}");
                    ExitCode::from(super::EXIT_FAILURE)
                }
            }
        }
        Err(Failure::Invalid(lines)) => {
            for line in lines {
                eprintln!("error: {line}");
            }
            ExitCode::from(super::EXIT_INVALID)
        }
        Err(Failure::Io(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(super::EXIT_FAILURE)
        }
    }
}

fn read(args: &RenderArgs) -> Result<String, Failure> {
    if args.file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Failure::Io(format!("reading standard input: {e}")))?;
        return Ok(text);
    }
    std::fs::read_to_string(&args.file)
        .map_err(|e| Failure::Io(format!("reading {}: {e}", args.file.display())))
}

/// Parses a Registry manifest strictly (unknown fields, wrong types, bad YAML are problems)
/// and renders it for a cluster with the default DNS domain; on invalid input every problem
/// is returned as one line.
pub fn render_manifest(
    text: &str,
    zot_version: Option<&str>,
) -> Result<DesiredRegistry, Vec<String>> {
    parse_and_render(text, zot_version, DEFAULT_CLUSTER_DOMAIN).map_err(|f| match f {
        Failure::Invalid(lines) => lines,
        Failure::Io(message) => vec![message],
    })
}

/// The Registry CRD's `openAPIV3Schema`, generated once per process.
fn registry_schema() -> &'static serde_json::Value {
    static SCHEMA: OnceLock<serde_json::Value> = OnceLock::new();
    SCHEMA.get_or_init(strict::crd_schema::<Registry>)
}

fn parse_and_render(
    text: &str,
    zot_version: Option<&str>,
    cluster_domain: &str,
) -> Result<DesiredRegistry, Failure> {
    let (registry, namespace, name) =
        strict::read_resource::<Registry>(text, registry_schema()).map_err(Failure::Invalid)?;
    desired_registry(
        RegistryRef {
            name: &name,
            namespace: &namespace,
            spec: &registry.spec,
            cluster_domain,
        },
        zot_version,
    )
    .map_err(|e| Failure::Invalid(e.lines()))
}

fn format_output(
    desired: &DesiredRegistry,
    format: Format,
    only: Option<Only>,
) -> Result<String, Failure> {
    let objects = desired
        .objects
        .to_values()
        .map_err(|e| Failure::Io(format!("serialising objects: {e}")))?;
    let mut documents = Vec::new();
    if only != Some(Only::Objects) {
        documents.push(desired.config.config.clone());
    }
    if only != Some(Only::Config) {
        documents.extend(objects);
    }
    match format {
        Format::Json if only == Some(Only::Config) => Ok(desired.config.json.clone()),
        Format::Json => serde_json::to_string_pretty(&documents)
            .map(|s| s + "\n")
            .map_err(|e| Failure::Io(format!("serialising JSON: {e}"))),
        Format::Yaml => {
            let mut out = String::new();
            for (i, doc) in documents.iter().enumerate() {
                if i == 0 && only != Some(Only::Objects) {
                    out.push_str(&format!(
                        "# zot {} config.json (sha256 {})\n",
                        desired.version, desired.config.hash
                    ));
                } else {
                    out.push_str("---\n");
                }
                let yaml = serde_yaml::to_string(doc)
                    .map_err(|e| Failure::Io(format!("serialising YAML: {e}")))?;
                out.push_str(&yaml);
            }
            Ok(out)
        }
    }
}
