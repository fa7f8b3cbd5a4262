//! Command-line habits a user relies on: `-f` anywhere, the cluster found without `-f`
//! after `run`, completions, `--version`. Through the binary, as a shell calls it.

use crate::harness::*;

#[test]
fn flags_anywhere_and_the_last_run_cluster_found_without_f() {
    let env = LocalEnv::new(1, 1);
    // The local spec under another name, and an AWS spec where `-f` defaults to, as in
    // the repository's root after the README's first command.
    std::fs::rename(&env.cluster, env.path("local.yaml")).unwrap();
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/../cluster.yaml"), env.path("cluster.yaml")).unwrap();
    let job = env.write_job(
        "gen.yaml",
        "name: gen\ninput: {generate: {rows: 500, seed: 1, text_length: 20}}\noutput: {uri: raw, rows_per_file: 500}\n",
    );
    let run = fleetform().current_dir(env.dir.path()).args(["run", "-f", "local.yaml"]).arg(&job).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));

    // No -f: status finds the cluster `run` just used, and says which file it read.
    let status = fleetform().current_dir(env.dir.path()).arg("status").output().unwrap();
    let (out, err) = (String::from_utf8_lossy(&status.stdout), String::from_utf8_lossy(&status.stderr));
    assert!(status.status.success(), "{out}{err}");
    assert!(out.contains("cluster t (Local provider)"), "{out}");
    assert!(err.contains("local.yaml (the cluster `fleetform run`/`up` last used here"), "{err}");

    // -f after the innermost subcommand, and an explicit -f wins over the remembered one.
    let list = fleetform().current_dir(env.dir.path()).args(["job", "list", "-f", "local.yaml"]).output().unwrap();
    let out = String::from_utf8_lossy(&list.stdout);
    assert!(list.status.success(), "{out}{}", String::from_utf8_lossy(&list.stderr));
    let id = out.split_whitespace().find(|w| w.starts_with("gen-")).unwrap_or_else(|| panic!("a gen job in {out}")).to_string();
    let st = fleetform().current_dir(env.dir.path()).args(["job", "status", "-f", "local.yaml", &id]).output().unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    assert!(!String::from_utf8_lossy(&st.stderr).contains("last used"), "an explicit -f needs no note");

    // Infrastructure commands keep ./cluster.yaml as their default (here the AWS spec).
    let v = fleetform().current_dir(env.dir.path()).arg("validate").output().unwrap();
    assert!(String::from_utf8_lossy(&v.stdout).contains("cluster.yaml is valid"), "{}", String::from_utf8_lossy(&v.stdout));
}

#[test]
fn completions_and_version() {
    for shell in ["bash", "zsh", "fish"] {
        let out = fleetform().args(["completions", shell]).output().unwrap();
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && script.contains("fleetform") && script.contains("reconcile"), "{shell}: {script}");
    }
    let out = fleetform().arg("--version").output().unwrap();
    let v = String::from_utf8_lossy(&out.stdout);
    assert!(v.starts_with(&format!("fleetform {}", env!("CARGO_PKG_VERSION"))), "{v}");
    // Built from a git checkout (as every test run is): the commit is named.
    assert!(v.contains("(git "), "{v}");
}
