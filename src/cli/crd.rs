//! `registry-operator crd`: generate the CRDs from the API types.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::api;

/// Arguments of `registry-operator crd`.
#[derive(Args, Debug)]
pub struct CrdArgs {
    /// Write one file per CRD into these directories (e.g. `crds` and
    /// `charts/registry-operator/crds`) instead of printing them all to stdout.
    #[arg(long = "out-dir", value_name = "DIR")]
    pub out_dirs: Vec<PathBuf>,
}

/// Prints or writes the CRDs.
pub fn run(args: &CrdArgs) -> ExitCode {
    match write(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(super::EXIT_FAILURE)
        }
    }
}

fn write(args: &CrdArgs) -> Result<(), Box<dyn std::error::Error>> {
    let crds = api::crds();
    if args.out_dirs.is_empty() {
        for (_, crd) in &crds {
            print!("{}", api::crd_yaml(crd)?);
        }
        return Ok(());
    }
    for dir in &args.out_dirs {
        std::fs::create_dir_all(dir)?;
        for (file, crd) in &crds {
            let path = dir.join(file);
            std::fs::write(&path, api::crd_yaml(crd)?)
                .map_err(|e| format!("writing {}: {e}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(())
}
