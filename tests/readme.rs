//! The README is a front door that must stay true: its tour (the ```` ```sh tour ````
//! blocks) runs with bash against a fresh server and answers as its `# →`
//! lines show; it stays under 20 KB; nothing in it or in `docs/` links a file
//! that does not exist; the example configuration lists every variable.

#[path = "api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// The address the README's commands use; the test's server is elsewhere.
const README_ADDR: &str = "127.0.0.1:8080";

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// One ```` ```sh tour ```` block: its commands and the `# →` lines under them.
struct Step {
    script: String,
    expected: Vec<String>,
}

fn tour(readme: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut current: Option<Step> = None;
    for line in readme.lines() {
        match &mut current {
            None if line.trim() == "```sh tour" => {
                current = Some(Step {
                    script: String::new(),
                    expected: Vec::new(),
                })
            }
            None => {}
            Some(_) if line.trim() == "```" => steps.push(current.take().unwrap()),
            Some(step) => {
                if let Some(e) = line.trim().strip_prefix("# →") {
                    step.expected.push(e.trim().to_owned());
                }
                step.script.push_str(line);
                step.script.push('\n');
            }
        }
    }
    assert!(current.is_none(), "an unclosed ```sh tour block");
    steps
}

#[test]
fn the_tour_runs_as_the_readme_shows() {
    let readme = read("README.md");
    let steps = tour(&readme);
    assert!(steps.len() >= 5, "the tour has {} blocks", steps.len());
    assert!(
        steps.iter().all(|s| !s.expected.is_empty()),
        "every tour block shows what it answers"
    );

    // A fresh directory, as a newcomer's clone: the server and the commands
    // run there, so `yizhan admin …` finds the server's ./data/yizhan.db.
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_yizhan"), bin.join("yizhan")).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let clean = |c: &mut Command| {
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("YIZHAN_") || k == "RUST_LOG" {
                c.env_remove(k);
            }
        }
        c.current_dir(dir.path()).env("PATH", &path);
    };

    // The server as the set-up section starts it (the seed included), on a free port.
    let started = Instant::now();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_yizhan"));
    clean(&mut cmd);
    cmd.args(["serve", "--listen", "127.0.0.1:0"]);
    let (child, addr, log) = helpers::spawn_serve(cmd, Duration::from_secs(120));
    let _server = Killed(child);
    let ready = started.elapsed();

    let mut script = String::from("set -euo pipefail\n");
    for (i, s) in steps.iter().enumerate() {
        script.push_str(&format!("echo '@@step {i}'\n"));
        script.push_str(&s.script.replace(README_ADDR, &addr));
    }
    let mut bash = Command::new("bash");
    clean(&mut bash);
    let bash = bash
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bash runs");
    let out = wait_with_timeout(bash, Duration::from_secs(120));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the tour failed ({}):\n{stdout}\n{stderr}",
        out.status
    );

    // Each block's output holds its `# →` lines, in order.
    let outputs: Vec<&str> = stdout.split("@@step ").skip(1).collect();
    assert_eq!(outputs.len(), steps.len(), "{stdout}");
    for (i, (step, output)) in steps.iter().zip(&outputs).enumerate() {
        let mut rest = output.replace(&addr, README_ADDR);
        for e in &step.expected {
            let at = rest.find(e.as_str()).unwrap_or_else(|| {
                panic!(
                    "tour block {i}: `{e}` not in its answer:\n{output}\n(script:\n{})",
                    step.script
                )
            });
            rest = rest[at + e.len()..].to_owned();
        }
    }
    // The code was in the server's log at INFO, where the README says.
    let log = log.lock().unwrap().join("\n");
    assert!(
        log.contains("sign-in code for 138****5678: ")
            && log.contains("(development: no SMS provider)"),
        "{log}"
    );
    eprintln!(
        "server ready in {:.1} s; the tour ran in {:.1} s",
        ready.as_secs_f64(),
        (started.elapsed() - ready).as_secs_f64()
    );
}

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_with_timeout(child: std::process::Child, limit: Duration) -> std::process::Output {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            panic!("the tour took longer than {limit:?}");
        }
    }
}

#[test]
fn the_readme_is_a_front_door() {
    let readme = read("README.md");
    assert!(
        readme.len() <= 20 * 1024,
        "README.md is {} bytes",
        readme.len()
    );
    for must in [
        "## Prerequisites",
        "scripts/test",
        "cargo install --path .",
        "target/release/yizhan",
        "## SMS providers",
        "yizhan admin code",
    ] {
        assert!(readme.contains(must), "README.md lacks {must}");
    }
}

/// `[text](target)` links in Markdown, with the line they are on.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(end) = after.find(')') else { break };
            out.push((n + 1, after[..end].to_owned()));
            rest = &after[end..];
        }
    }
    out
}

#[test]
fn relative_links_name_files_that_exist() {
    let mut files = vec![PathBuf::from(ROOT).join("README.md")];
    for e in std::fs::read_dir(Path::new(ROOT).join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            files.push(p);
        }
    }
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (line, target) in links(&text) {
            let target = target.split_whitespace().next().unwrap_or("");
            if target.is_empty()
                || target.starts_with('#')
                || target.contains("://")
                || target.starts_with("mailto:")
                || target.starts_with('/')
            {
                continue;
            }
            let path = target.split('#').next().unwrap();
            checked += 1;
            if !file.parent().unwrap().join(path).exists() {
                broken.push(format!("{}:{line}: {target}", file.display()));
            }
        }
    }
    assert!(checked > 10, "only {checked} relative links found");
    assert!(
        broken.is_empty(),
        "links to missing files:\n{}",
        broken.join("\n")
    );
}

/// Every variable `serve` reads is in the example configuration, and every
/// variable the example sets is one `serve` reads.
#[test]
fn the_example_configuration_lists_every_variable() {
    let config = read("src/config.rs");
    let example = read("docs/yizhan.env.example");
    let read_by_serve: Vec<&str> = config
        .split("env = \"")
        .skip(1)
        .map(|s| &s[..s.find('"').unwrap()])
        .collect();
    assert!(read_by_serve.len() > 20, "{read_by_serve:?}");
    for v in &read_by_serve {
        assert!(
            example.contains(&format!("{v}=")),
            "docs/yizhan.env.example lacks {v}"
        );
    }
    // Variables without a flag (a secret kept out of `ps`, the log filter)
    // are read by name in main.rs.
    let main = read("src/main.rs");
    for line in example.lines().filter(|l| l.starts_with("YIZHAN_")) {
        let v = &line[..line.find('=').unwrap()];
        assert!(
            read_by_serve.contains(&v) || main.contains(&format!("\"{v}\"")),
            "docs/yizhan.env.example sets {v}, which nothing reads"
        );
    }
}
