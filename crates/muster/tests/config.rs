//! Loading ecosystem files: muster.toml and pm2's JSON, YAML and JavaScript files.
//!
//! Fixtures live in `tests/config/`: `good/` holds one pair of apps in every format,
//! `broken/` one file per expected error with a `<file>.expected` beside it.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use muster::config::{ConfigError, Loaded, load};
use muster_proto::{AppSpec, ExecMode, Instances, Schedule};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/config")
}

fn good(name: &str) -> PathBuf {
    fixtures().join("good").join(name)
}

fn load_ok(path: &Path, profile: Option<&str>) -> Loaded {
    load(path, profile).unwrap_or_else(|e| panic!("{} should load: {e}", path.display()))
}

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// The two apps every file in `good/` describes, resolved against that directory.
fn expected_good_apps() -> Vec<AppSpec> {
    let dir = good("");
    let dir = dir.as_path();
    let api = AppSpec {
        name: "api".into(),
        script: dir.join("api.js"),
        args: strings(&["--port", "3000"]),
        interpreter_args: strings(&["--max-old-space-size=512"]),
        cwd: Some(dir.to_owned()),
        env: env(&[("NODE_ENV", "development"), ("PORT", "3000")]),
        instances: Instances::Count(4),
        exec_mode: ExecMode::Cluster,
        listen: strings(&["127.0.0.1:3000", "[::1]:3000"]),
        schedule: Schedule::Rr,
        max_restarts: 15,
        min_uptime_ms: 2_000,
        kill_timeout_ms: 3_000,
        listen_timeout_ms: 10_000,
        wait_ready: true,
        max_memory_restart: Some(200 * 1024 * 1024),
        out_file: Some(dir.join("logs/api.out.log")),
        error_file: Some(dir.join("logs/api.err.log")),
        merge_logs: true,
        log_date_format: Some("YYYY-MM-DD HH:mm:ss".into()),
        stop_signal: "SIGINT".into(),
        ..AppSpec::default()
    };
    let worker = AppSpec {
        name: "worker".into(),
        script: dir.join("jobs/worker.py"),
        args: strings(&["--queue", "jobs", "--name", "night shift"]),
        cwd: Some(dir.join("jobs")),
        env: env(&[("QUEUE", "jobs")]),
        instances: Instances::Max,
        exec_mode: ExecMode::Fork,
        // Not Node: its listeners come as LISTEN_FDS unless the file asks for rr.
        schedule: Schedule::Shared,
        restart_delay_ms: 500,
        exp_backoff_restart_delay_ms: Some(100),
        min_uptime_ms: 10_000,
        time: true,
        log_max_size: Some(10 * 1024 * 1024),
        log_keep: 3,
        stop_signal: "SIGINT".into(),
        ..AppSpec::default()
    };
    vec![api, worker]
}

const GOOD_FILES: [&str; 5] = [
    "muster.toml",
    "ecosystem.config.json",
    "ecosystem.config.yaml",
    "ecosystem.config.js",
    "ecosystem.config.mjs",
];

#[test]
fn every_format_loads_the_same_apps() {
    let expected = expected_good_apps();
    for name in GOOD_FILES {
        let mut loaded = load_ok(&good(name), None);
        // Only the YAML file says `ignore_watch`, only the JS one `cron_restart` (both
        // checked in the test of pm2 fields).
        loaded.apps[0].ignore_watch.clear();
        loaded.apps[0].cron_restart = None;
        assert_eq!(loaded.apps, expected, "{name}");
    }
}

#[test]
fn the_default_schedule_fits_the_program() {
    let dir = std::env::temp_dir().join(format!("muster-config-sched-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let file = dir.join("muster.toml");
    fs::write(
        &file,
        "[[app]]\nname = \"py\"\nscript = \"w.py\"\nlisten = [\"127.0.0.1:1\"]\n\
         [[app]]\nname = \"py-rr\"\nscript = \"w.py\"\nschedule = \"rr\"\n\
         [[app]]\nname = \"bin\"\nscript = \"./server\"\n\
         [[app]]\nname = \"js\"\nscript = \"a.js\"\n\
         [[app]]\nname = \"node22\"\nscript = \"a.mjs\"\ninterpreter = \"/opt/node22/bin/node22\"\n",
    )
    .unwrap();
    let loaded = load_ok(&file, None);
    let schedules: Vec<_> = loaded
        .apps
        .iter()
        .map(|a| (a.name.as_str(), a.schedule))
        .collect();
    assert_eq!(
        schedules,
        [
            ("py", Schedule::Shared),
            ("py-rr", Schedule::Rr),
            ("bin", Schedule::Shared),
            ("js", Schedule::Rr),
            ("node22", Schedule::Rr),
        ]
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn muster_toml_has_no_warnings() {
    let loaded = load_ok(&good("muster.toml"), None);
    assert_eq!(loaded.warnings, Vec::<String>::new());
}

#[test]
fn env_profile_overrides_env_in_every_format() {
    for name in GOOD_FILES {
        let loaded = load_ok(&good(name), Some("production"));
        let api = &loaded.apps[0];
        assert_eq!(
            api.env,
            env(&[
                ("DATABASE_URL", "postgres://db/prod"),
                ("NODE_ENV", "production"),
                ("PORT", "3000"),
            ]),
            "{name}"
        );
        // The worker has no env_production: its env is unchanged.
        assert_eq!(loaded.apps[1].env, env(&[("QUEUE", "jobs")]), "{name}");
        assert!(
            !loaded.warnings.iter().any(|w| w.contains("env_production")),
            "{name}: {:?}",
            loaded.warnings
        );
    }
}

#[test]
fn a_profile_no_app_has_is_a_warning() {
    let loaded = load_ok(&good("muster.toml"), Some("staging"));
    assert_eq!(loaded.apps, expected_good_apps());
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    assert!(loaded.warnings[0].contains("no app has env_staging"));
}

/// Asserts that some warning contains every one of `parts`.
fn assert_warned(loaded: &Loaded, parts: &[&str]) {
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| parts.iter().all(|p| w.contains(p))),
        "no warning with {parts:?} in {:#?}",
        loaded.warnings
    );
}

#[test]
fn pm2_fields_muster_ignores_are_warnings_in_good_files() {
    let json = load_ok(&good("ecosystem.config.json"), None);
    // `watch: false` asks for nothing: no warning.
    assert_eq!(json.warnings, Vec::<String>::new());

    // watch, ignore_watch and cron_restart are supported: read, not warned about.
    let yaml = load_ok(&good("ecosystem.config.yaml"), None);
    assert!(
        !yaml.warnings.iter().any(|w| w.contains("watch")),
        "{:?}",
        yaml.warnings
    );
    assert_eq!(yaml.apps[0].ignore_watch, ["node_modules", "logs"]);

    let js = load_ok(&good("ecosystem.config.js"), None);
    assert!(
        !js.warnings.iter().any(|w| w.contains("watch")),
        "{:?}",
        js.warnings
    );
    assert_eq!(js.apps[0].cron_restart.as_deref(), Some("0 4 * * *"));
    assert_eq!(js.apps[0].watch, None);
    assert_warned(
        &js,
        &["ecosystem.config.js", "deploy", "not used by muster"],
    );
}

#[test]
fn unsupported_and_unknown_pm2_fields_are_each_named() {
    let path = fixtures().join("warnings/ecosystem.config.json");
    let loaded = load_ok(&path, None);
    for field in ["post_update", "source_map_support"] {
        assert_warned(
            &loaded,
            &[&format!("apps[0].{field}: not supported by muster")],
        );
    }
    assert_warned(
        &loaded,
        &[
            "apps[0].instnaces: unknown field",
            "did you mean \"instances\"",
        ],
    );
    assert_warned(&loaded, &["apps[0].colour: unknown field; ignored"]);
    assert_warned(&loaded, &["apps[0].out_file", "already set"]);
    assert_warned(&loaded, &["deploy: not used by muster"]);
    // `vizion: false` asks for nothing; `instance_var` is supported.
    assert_eq!(loaded.warnings.len(), 6, "{:#?}", loaded.warnings);
    // watch, ignore_watch and cron_restart are read, not warned about.
    let app = &loaded.apps[0];
    assert_eq!(app.watch, Some(vec![PathBuf::from("src")]));
    assert_eq!(app.ignore_watch, ["node_modules"]);
    assert_eq!(app.cron_restart.as_deref(), Some("0 4 * * *"));
    let api = &loaded.apps[0];
    assert_eq!(api.instance_var, "INSTANCE_ID");
    // The typo did not set anything; the later alias won.
    assert_eq!(api.instances, Instances::Count(1));
    assert_eq!(api.out_file, Some(path.parent().unwrap().join("b.log")));
}

#[test]
fn a_single_app_object_is_a_file() {
    let path = fixtures().join("shapes/single.json");
    let loaded = load_ok(&path, None);
    let dir = path.parent().unwrap();
    let [app] = loaded.apps.as_slice() else {
        panic!("one app: {:?}", loaded.apps)
    };
    assert_eq!(app.name, "server");
    assert_eq!(app.script, dir.join("bin/server"));
    assert_eq!(app.args, strings(&["--port", "8080"]));
    // Not a node app, so pm2's "instances means cluster" rule does not apply.
    assert_eq!(app.exec_mode, ExecMode::Fork);
    assert_eq!(app.instances, Instances::Count(2));
    assert_eq!(app.cwd.as_deref(), Some(dir));
}

#[test]
fn a_bare_list_of_apps_is_a_file() {
    let path = fixtures().join("shapes/list.yaml");
    let loaded = load_ok(&path, None);
    let dir = path.parent().unwrap();
    assert_eq!(loaded.apps.len(), 2);
    let (api, tool) = (&loaded.apps[0], &loaded.apps[1]);
    assert_eq!(api.name, "api");
    assert_eq!(
        api.exec_mode,
        ExecMode::Cluster,
        "pm2: node + instances = cluster"
    );
    assert_eq!(api.stop_signal, "SIGINT", "pm2's stop signal");
    // A bare program name stays a PATH lookup, as under pm2.
    assert_eq!(tool.script, PathBuf::from("python3"));
    assert_eq!(tool.args, strings(&["-m", "http.server"]));
    assert_eq!(tool.cwd.as_deref(), Some(dir));
}

#[test]
fn yaml_merge_keys_apply() {
    let loaded = load_ok(&fixtures().join("shapes/merge-keys.yaml"), None);
    let restarts: Vec<u32> = loaded.apps.iter().map(|a| a.max_restarts).collect();
    assert_eq!(restarts, [3, 7]);
    assert!(loaded.apps.iter().all(|a| a.kill_timeout_ms == 1_000));
    assert_warned(&loaded, &["defaults: not used by muster"]);
}

#[test]
fn relative_paths_follow_cwd() {
    let loaded = load_ok(&fixtures().join("shapes/unix.toml"), None);
    let app = &loaded.apps[0];
    assert_eq!(app.name, "server");
    assert_eq!(app.cwd, Some(PathBuf::from("/srv/site")));
    assert_eq!(app.script, PathBuf::from("/srv/site/server"));
    assert_eq!(
        app.listen,
        strings(&["unix:/srv/site/run/site.sock", "0.0.0.0:8080"])
    );
    assert_eq!(app.out_file, Some(PathBuf::from("/srv/site/log/out.log")));
    assert_eq!(app.error_file, Some(PathBuf::from("/var/log/site.err")));
    assert_eq!(app.stop_signal, "SIGTERM", "muster.toml's default");
}

#[test]
fn a_missing_file_names_the_file() {
    let path = fixtures().join("good/does-not-exist.toml");
    let err = load(&path, None).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
    assert!(err.to_string().contains("does-not-exist.toml"), "{err}");
}

/// Every file in `broken/` fails to load, and its message contains each line of its
/// `<file>.expected`.
#[test]
fn broken_files_fail_with_their_expected_messages() {
    let dir = fixtures().join("broken");
    let mut cases: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_none_or(|e| e != "expected"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 12, "only {} broken fixtures", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let mut expected_path = case.clone().into_os_string();
        expected_path.push(".expected");
        let expected = fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e}", PathBuf::from(&expected_path).display()));
        match load(case, None) {
            Ok(loaded) => failures.push(format!("{}: loaded {loaded:?}", case.display())),
            Err(err) => {
                let shown = err.to_string();
                println!("{shown}\n");
                for want in expected.lines().filter(|l| !l.trim().is_empty()) {
                    if !shown.contains(want) {
                        failures.push(format!(
                            "{}:\n  expected to contain: {want}\n  got: {shown}",
                            case.display()
                        ));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn max_listeners_is_read_from_toml_and_pm2_files_and_checked_against_its_range() {
    let dir = std::env::temp_dir().join(format!(
        "muster-config-max-listeners-{}",
        std::process::id()
    ));
    fs::create_dir_all(&dir).unwrap();
    let toml = dir.join("muster.toml");
    fs::write(
        &toml,
        "[[app]]\nname = \"a\"\nscript = \"a.js\"\nmax_listeners = 8\n",
    )
    .unwrap();
    let json = dir.join("ecosystem.json");
    fs::write(
        &json,
        r#"{"apps":[{"name":"b","script":"b.js","max_listeners":0}]}"#,
    )
    .unwrap();
    let from_toml = load_ok(&toml, None);
    assert_eq!(from_toml.apps[0].max_listeners, Some(8));
    assert!(from_toml.warnings.is_empty(), "{:?}", from_toml.warnings);
    let from_pm2 = load_ok(&json, None);
    assert_eq!(from_pm2.apps[0].max_listeners, Some(0));
    let refused = muster_proto::check_limits(&from_pm2.apps[0])
        .unwrap_err()
        .to_string();
    assert_eq!(refused, "max_listeners must be between 1 and 65535, got 0");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn liveness_and_health_checks_load_in_both_dialects() {
    use muster_proto::{HealthProbe, OnUnresponsive};
    let pm2 = load_ok(&fixtures().join("shapes/liveness.json"), None);
    let (api, jobs) = (&pm2.apps[0], &pm2.apps[1]);
    assert_eq!(api.on_unresponsive, Some(OnUnresponsive::Replace));
    let check = api.health_check.as_ref().expect("api's check");
    assert_eq!(check.probe, HealthProbe::Http("/healthz".into()));
    assert_eq!(
        (check.interval_ms, check.timeout_ms, check.failures),
        (5_000, 500, 2)
    );
    assert_eq!(jobs.on_unresponsive, None, "off unless asked for");
    let check = jobs.health_check.as_ref().expect("jobs' check");
    assert_eq!(
        check.probe,
        HealthProbe::Command("test -e /tmp/jobs.ok".into())
    );
    assert_eq!(
        (check.interval_ms, check.timeout_ms, check.failures),
        (10_000, 1_000, 3)
    );
    assert!(pm2.warnings.is_empty(), "{:?}", pm2.warnings);

    let toml = load_ok(&fixtures().join("shapes/liveness.toml"), None);
    let api = &toml.apps[0];
    assert_eq!(api.on_unresponsive, Some(OnUnresponsive::Mark));
    let check = api.health_check.as_ref().expect("api's check");
    assert_eq!(
        check.probe,
        HealthProbe::Command("curl -fs localhost:3000/healthz".into())
    );
    assert_eq!(
        (check.interval_ms, check.timeout_ms, check.failures),
        (2_000, 1_000, 5)
    );
}
