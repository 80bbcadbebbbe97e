//! `suanpan dev`: a local N-node cluster as child processes of this one, stopped on Ctrl-C.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

pub struct DevOpts {
    pub nodes: u64,
    pub data_dir: PathBuf,
    pub base_port: u16,
    pub extra_node_args: Vec<String>,
}

/// Address of node `id` (1-based) in a dev cluster.
pub fn node_addr(base_port: u16, id: u64) -> String {
    format!("127.0.0.1:{}", u64::from(base_port) + id - 1)
}

/// Command line of one dev node.
pub fn node_args(opts: &DevOpts, id: u64, key: &Path) -> Vec<String> {
    let mut a = vec![
        "node".to_string(),
        "--id".into(),
        id.to_string(),
        "--data-dir".into(),
        opts.data_dir
            .join(format!("node-{id}"))
            .display()
            .to_string(),
        "--listen".into(),
        node_addr(opts.base_port, id),
        "--admin-key-file".into(),
        key.display().to_string(),
        // A laptop cluster on loopback: plaintext, said out loud.
        "--insecure".into(),
    ];
    for p in 1..=opts.nodes {
        if p != id {
            a.push("--peer".into());
            a.push(format!("{p}={}", node_addr(opts.base_port, p)));
        }
    }
    a.extend(opts.extra_node_args.iter().cloned());
    a
}

pub async fn run(opts: DevOpts) -> Result<()> {
    if !(1..=9).contains(&opts.nodes) {
        bail!("--nodes must be between 1 and 9");
    }
    std::fs::create_dir_all(&opts.data_dir)
        .with_context(|| format!("creating {}", opts.data_dir.display()))?;
    let key = opts.data_dir.join("admin.key");
    if !key.exists() {
        api::client::generate_key_file(&key)
            .with_context(|| format!("writing {}", key.display()))?;
    }
    let exe = std::env::current_exe().context("locating the suanpan binary")?;
    let mut children: Vec<(u64, Child)> = Vec::new();
    for id in 1..=opts.nodes {
        let log = std::fs::File::create(opts.data_dir.join(format!("node-{id}.log")))?;
        let child = Command::new(&exe)
            .args(node_args(&opts, id, &key))
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("starting node {id}"))?;
        children.push((id, child));
    }
    let endpoints: Vec<String> = (1..=opts.nodes)
        .map(|i| node_addr(opts.base_port, i))
        .collect();
    println!(
        "Suanpan dev cluster: {} nodes, data in {}",
        opts.nodes,
        opts.data_dir.display()
    );
    for (i, e) in endpoints.iter().enumerate() {
        println!(
            "  node {} — {e}  (log: {})",
            i + 1,
            opts.data_dir.join(format!("node-{}.log", i + 1)).display()
        );
    }
    println!("admin key: {}", key.display());
    // The commands below must work pasted as printed into a shell in this directory: the binary
    // by the path it was started from (it is not on PATH), and no helper tools (ids are generated).
    let bin = shown_path(&exe);
    println!("\nTry (in another shell, in this directory):");
    let ep = &endpoints[0];
    let k = key.display();
    println!("  {bin} cluster status --endpoint {ep} --key {k}");
    println!("  {bin} account create --endpoint {ep} --key {k} --currency CNY");
    println!("  {bin} bench --endpoint {ep} --key {k} --transfers 100000");
    println!("\nCtrl-C stops the cluster.");

    let mut ticker = tokio::time::interval(Duration::from_millis(500));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = ticker.tick() => {
                for (id, c) in children.iter_mut() {
                    if let Ok(Some(status)) = c.try_wait() {
                        eprintln!("node {id} exited ({status}); see its log");
                    }
                }
                children.retain_mut(|(_, c)| !matches!(c.try_wait(), Ok(Some(_))));
                if children.is_empty() {
                    bail!("every node exited");
                }
            }
        }
    }
    // stderr: stdout may be a pipe its reader already closed (a panic here would orphan the nodes).
    eprintln!("stopping…");
    for (_, c) in children.iter_mut() {
        terminate(c);
    }
    for (_, c) in children.iter_mut() {
        let _ = c.wait();
    }
    Ok(())
}

/// SIGTERM (graceful), falling back to kill.
pub fn terminate(c: &mut Child) {
    let ok = Command::new("kill")
        .arg("-TERM")
        .arg(c.id().to_string())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        let _ = c.kill();
    }
}

/// `path` relative to the current directory when it lies below it (`./target/release/suanpan`),
/// else absolute: a path a user can paste.
fn shown_path(path: &std::path::Path) -> String {
    let rel = std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(|p| p.to_path_buf()));
    match rel {
        Some(p) => format!("./{}", p.display()),
        None => path.display().to_string(),
    }
}
