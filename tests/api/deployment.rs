//! The files an operator installs: the systemd units pass `systemd-analyze verify`, the nginx
//! sites pass `nginx -t`, every example config loads with the real settings loader, and the
//! three-node example agrees with itself, with its nginx upstream and with the template unit.
//!
//! The tools are required, not optional: a missing one fails the test (scripts/test installs
//! them), so a machine without them cannot pass these files unchecked.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use botwave::config::Settings;

const REPO: &str = env!("CARGO_MANIFEST_DIR");
/// Where the units expect the binary; tests point them at the one cargo built.
const INSTALLED_BINARY: &str = "/usr/local/bin/botwave";
/// Stand-ins for the secrets an operator generates (`openssl rand -hex 32`).
const TEST_JWT_SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const TEST_COOKIE: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

fn repo_file(relative: &str) -> PathBuf {
    Path::new(REPO).join(relative)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// A fresh directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("botwave-{label}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `program`, failing the test (not skipping it) when it is not installed.
fn run(program: &str, args: &[&std::ffi::OsStr], cwd: &Path) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {program} ({e}); install it (scripts/test does, with apt-get)")
        })
}

fn output_text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `systemd-analyze verify` on a copy of `unit` (saved as `installed_name`, so a template can
/// be checked as one of its instances) whose ExecStart runs the built binary, which verify
/// requires to exist. Returns what verify said about this unit, or `Err` with its complaints.
///
/// verify exits non-zero on errors (a missing binary, a bad ExecStart) but only warns, with exit
/// 0, about unknown or unparsable settings, so any line it prints about our unit counts as a
/// failure too. Lines about other units it loads along the way (system targets) do not: they are
/// the machine's, not ours. An unknown `User=` is not checked by verify.
fn systemd_verify(unit: &str, installed_name: &str) -> Result<(), String> {
    let dir = TempDir::new("systemd-verify");
    let text = unit.replace(INSTALLED_BINARY, env!("CARGO_BIN_EXE_botwave"));
    let path = dir.0.join(installed_name);
    std::fs::write(&path, text).unwrap();
    let output = run(
        "systemd-analyze",
        &["verify".as_ref(), path.as_os_str()],
        &dir.0,
    );
    let text = output_text(&output);
    let about_us: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("botwave"))
        .collect();
    if output.status.success() && about_us.is_empty() {
        Ok(())
    } else {
        Err(format!("{}:\n{text}", output.status))
    }
}

#[test]
fn the_systemd_units_pass_systemd_analyze_verify() {
    let single = read(&repo_file("systemd/botwave.service"));
    systemd_verify(&single, "botwave.service").unwrap();
    let template = read(&repo_file("systemd/botwave@.service"));
    systemd_verify(&template, "botwave@.service").unwrap();
    systemd_verify(&template, "botwave@1.service").unwrap();
}

#[test]
fn systemd_verify_as_used_here_catches_a_misspelt_setting() {
    // verify exits 0 on this; the check above must still see it.
    let template = read(&repo_file("systemd/botwave@.service"));
    let misspelt = template.replace("WatchdogSec=", "WatchdogSecs=");
    assert_ne!(misspelt, template);
    let complaint = systemd_verify(&misspelt, "botwave@1.service").unwrap_err();
    assert!(complaint.contains("WatchdogSecs"), "{complaint}");
}

/// `nginx -t` on a site file inside a minimal nginx.conf, with a throwaway certificate in place
/// of the one the site names.
fn nginx_test(site: &Path) -> Output {
    let dir = TempDir::new("nginx-test");
    let cert = dir.0.join("fullchain.pem");
    let key = dir.0.join("privkey.pem");
    let generated = run(
        "openssl",
        &[
            "req".as_ref(),
            "-x509".as_ref(),
            "-newkey".as_ref(),
            "rsa:2048".as_ref(),
            "-nodes".as_ref(),
            "-subj".as_ref(),
            "/CN=botwave.example.com".as_ref(),
            "-days".as_ref(),
            "1".as_ref(),
            "-keyout".as_ref(),
            key.as_os_str(),
            "-out".as_ref(),
            cert.as_os_str(),
        ],
        &dir.0,
    );
    assert!(generated.status.success(), "{}", output_text(&generated));
    let site_text = read(site).replace("/etc/ssl/botwave", dir.0.to_str().unwrap());
    std::fs::write(dir.0.join("site.conf"), site_text).unwrap();
    let d = dir.0.display();
    std::fs::write(
        dir.0.join("nginx.conf"),
        format!(
            "pid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\n\
             http {{\n    access_log off;\n    include {d}/site.conf;\n}}\n"
        ),
    )
    .unwrap();
    let error_log = dir.0.join("error.log");
    let conf = dir.0.join("nginx.conf");
    run(
        "nginx",
        &[
            "-t".as_ref(),
            "-q".as_ref(),
            "-e".as_ref(),
            error_log.as_os_str(),
            "-p".as_ref(),
            dir.0.as_os_str(),
            "-c".as_ref(),
            conf.as_os_str(),
        ],
        &dir.0,
    )
}

fn config_files(prefix: &str, extension: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo_file("config"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            let name = path.file_name().unwrap().to_string_lossy();
            name.starts_with(prefix) && name.ends_with(extension)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn the_nginx_sites_pass_nginx_t() {
    let sites = config_files("nginx-", ".conf");
    assert_eq!(sites.len(), 2, "{sites:?}");
    for site in sites {
        let output = nginx_test(&site);
        assert!(
            output.status.success(),
            "{}: {}",
            site.display(),
            output_text(&output)
        );
    }
}

/// The secrets every example leaves out, as the template unit's environment file supplies them.
fn secrets_from_environment(var: &str) -> Option<String> {
    match var {
        "BOTWAVE_JWT_SECRET" => Some(TEST_JWT_SECRET.to_owned()),
        "BOTWAVE_CLUSTER_COOKIE" => Some(TEST_COOKIE.to_owned()),
        _ => None,
    }
}

#[test]
fn every_example_config_loads_with_the_real_settings_loader() {
    let files = config_files("", ".toml");
    assert!(files.len() >= 4, "{files:?}");
    for file in &files {
        if let Err(error) = Settings::load(Some(file), secrets_from_environment) {
            panic!("{}: {error}", file.display());
        }
    }
}

fn toml_table(path: &Path) -> toml::Table {
    read(path)
        .parse()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn string_at<'a>(table: &'a toml::Table, path: &str) -> &'a str {
    let mut keys = path.split('.');
    let mut value = keys.next().and_then(|key| table.get(key));
    for key in keys {
        value = value.and_then(|v| v.get(key));
    }
    value
        .and_then(toml::Value::as_str)
        .unwrap_or_else(|| panic!("no string at `{path}`"))
}

/// The `server ADDRESS …;` lines of each upstream block of the nginx site.
fn upstream_servers(site: &str) -> Vec<BTreeSet<String>> {
    let blocks: Vec<&str> = site
        .split("\nupstream ")
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(block, _)| block))
        .collect();
    assert!(!blocks.is_empty(), "the site has an upstream block");
    blocks
        .iter()
        .map(|block| {
            block
                .lines()
                .filter_map(|line| line.trim().strip_prefix("server "))
                .filter_map(|rest| rest.split_whitespace().next())
                .map(|address| address.trim_end_matches(';').to_owned())
                .collect()
        })
        .collect()
}

/// A `Key=value` setting of a unit file.
fn unit_setting<'a>(unit: &'a str, key: &str) -> &'a str {
    unit.lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("the unit has no {key}="))
}

#[test]
fn the_cluster_example_nodes_agree_with_each_other_nginx_and_the_unit() {
    let files = config_files("node-", ".toml");
    assert_eq!(files.len(), 3, "{files:?}");
    let nodes: Vec<toml::Table> = files.iter().map(|f| toml_table(f)).collect();
    let unit = read(&repo_file("systemd/botwave@.service"));

    let distinct = |key: &str| {
        let values: BTreeSet<&str> = nodes.iter().map(|n| string_at(n, key)).collect();
        assert_eq!(values.len(), nodes.len(), "`{key}` repeats: {values:?}");
        values
    };
    let http_addresses = distinct("listen");
    distinct("cluster.node_name");
    let cluster_addresses = distinct("cluster.listen");

    let database_urls: BTreeSet<&str> =
        nodes.iter().map(|n| string_at(n, "database.url")).collect();
    assert_eq!(database_urls.len(), 1, "one database for all nodes");

    let data_dir_pattern = unit_setting(&unit, "Environment")
        .strip_prefix("BOTWAVE_DATA_DIR=")
        .expect("the unit sets BOTWAVE_DATA_DIR");
    let stop_timeout: u64 = unit_setting(&unit, "TimeoutStopSec").parse().unwrap();
    for (file, node) in files.iter().zip(&nodes) {
        let stem = file.file_stem().unwrap().to_string_lossy();
        let instance = stem.strip_prefix("node-").unwrap();
        assert_eq!(
            string_at(node, "data_dir"),
            data_dir_pattern.replace("%i", instance),
            "{stem}: data_dir differs from what botwave@{instance} sets"
        );

        let peers: BTreeSet<&str> = node["cluster"]["peers"]
            .as_array()
            .expect("cluster.peers is a list")
            .iter()
            .map(|peer| peer.as_str().expect("a peer is a host:port string"))
            .collect();
        let others: BTreeSet<&str> = cluster_addresses
            .iter()
            .copied()
            .filter(|address| *address != string_at(node, "cluster.listen"))
            .collect();
        assert_eq!(peers, others, "{stem}: peers are the other nodes");

        let shutdown = node["cluster"]["shutdown_timeout_secs"]
            .as_integer()
            .expect("cluster.shutdown_timeout_secs is a number");
        assert!(
            u64::try_from(shutdown).unwrap() < stop_timeout,
            "{stem}: systemd would kill the node before its own shutdown timeout"
        );
    }

    let site = read(&repo_file("config/nginx-botwave-cluster.conf"));
    let http_addresses: BTreeSet<String> = http_addresses.into_iter().map(String::from).collect();
    for upstream in upstream_servers(&site) {
        assert_eq!(upstream, http_addresses, "nginx balances over every node");
    }
}
