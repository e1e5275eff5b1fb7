//! `registry-operator completion SHELL`: the script a shell loads, checked by loading it into a
//! real bash and asking it to complete, as a user pressing Tab would.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_registry-operator");

/// What bash offers for the words typed so far (the last one being completed).
fn bash_completes(words: &[&str]) -> Vec<String> {
    let script = Command::new(BIN)
        .args(["completion", "bash"])
        .output()
        .expect("the binary runs");
    assert!(script.status.success());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry-operator.bash");
    std::fs::write(&path, &script.stdout).unwrap();
    let cword = words.len() - 1;
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let prev = if cword > 0 { words[cword - 1] } else { "" };
    let program = format!(
        "source '{}'; COMP_WORDS=({}); COMP_CWORD={cword}; _registry__operator registry-operator '{}' '{prev}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        path.display(),
        quoted.join(" "),
        words[cword],
    );
    let out = Command::new("bash")
        .args(["--norc", "-c", &program])
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn bash_completes_commands_subcommands_and_their_flags() {
    assert_eq!(bash_completes(&["registry-operator", "ret"]), ["retention"]);
    assert_eq!(
        bash_completes(&["registry-operator", "retention", "pl"]),
        ["plan"]
    );
    assert_eq!(
        bash_completes(&["registry-operator", "retention", "plan", "--reg"]),
        ["--registry"]
    );
    let trust = bash_completes(&["registry-operator", "retention", "apply", "--trust"]);
    assert_eq!(trust, ["--trust-token-realm"]);
}

#[test]
fn every_shell_gets_a_script_and_an_unknown_one_is_invalid_input() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = Command::new(BIN)
            .args(["completion", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains("registry-operator"), "{shell}: {script}");
        assert!(script.contains("purge-project"), "{shell}");
    }
    let out = Command::new(BIN)
        .args(["completion", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
