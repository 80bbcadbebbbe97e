//! `suanpan dev` prints commands to try; pasted into a shell as printed, in the directory it was
//! started from, they must work (no `suanpan` on PATH, no `uuidgen`).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_suanpan");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs a printed command line through `sh` until it succeeds (the cluster may still be electing).
fn run_until_ok(line: &str, dir: &std::path::Path, deadline: Instant) -> std::process::Output {
    loop {
        let out = Command::new("sh")
            .arg("-c")
            .arg(line)
            .current_dir(dir)
            .output()
            .unwrap();
        if out.status.success() || Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn dev_banner_commands_work_as_printed() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let data = tempfile::tempdir().unwrap();
    let mut dev = Command::new(BIN)
        .args(["dev", "--nodes", "1", "--base-port"])
        .arg(free_port().to_string())
        .arg("--data-dir")
        .arg(data.path())
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut tries = Vec::new();
    let mut lines = BufReader::new(dev.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.starts_with("Ctrl-C") {
            break;
        }
        if let Some(cmd) = line.strip_prefix("  ./") {
            tries.push(format!("./{cmd}"));
        }
    }
    // Keep reading whatever else it prints, so its stdout never turns into a broken pipe.
    let drain = std::thread::spawn(move || lines.for_each(drop));
    let deadline = Instant::now() + Duration::from_secs(60);
    let result = std::panic::catch_unwind(|| {
        assert_eq!(tries.len(), 3, "{tries:?}");
        for line in &tries {
            // The load generator as printed runs 100 000 transfers; the same line with fewer
            // proves its flags, endpoint and key work without making this test slow.
            let line = line.replace("--transfers 100000", "--transfers 200");
            let out = run_until_ok(&line, dir, deadline);
            assert!(
                out.status.success(),
                "{line}: {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            if line.contains("account create") {
                // The id was generated and printed.
                let text = String::from_utf8_lossy(&out.stdout);
                assert!(text.contains(": ok"), "{text}");
            }
        }
    });
    // SIGTERM: `suanpan dev` stops its nodes before exiting.
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(dev.id().to_string())
        .status();
    let _ = dev.wait();
    let _ = drain.join();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
