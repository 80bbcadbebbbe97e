//! `suanpan keys` and `suanpan clients`: key files, and API client keys with their roles.

use super::*;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Role {
    Payments,
    Finance,
    Admin,
}

#[derive(Subcommand, Debug)]
pub enum KeysCmd {
    /// Generate an Ed25519 key file (mode 0600) and print its public key.
    Gen {
        #[arg(long)]
        out: PathBuf,
        /// Print machine-readable JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum CertsCmd {
    /// Create the cluster's CA (`ca.pem`, `ca.key`) and certificates for nodes 1..=N in DIR.
    Init {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 3)]
        nodes: u64,
        /// Extra host names or IP addresses every node certificate carries (repeat).
        #[arg(long = "host")]
        hosts: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Create a certificate for one more node, signed by the CA in DIR (before `cluster add-node`).
    Node {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        id: u64,
        #[arg(long = "host")]
        hosts: Vec<String>,
        #[arg(long)]
        json: bool,
    },
}

pub fn certs(cmd: CertsCmd) -> Result<Exit> {
    let (dir, ids, hosts, json_out) = match cmd {
        CertsCmd::Init {
            dir,
            nodes,
            hosts,
            json,
        } => {
            if !(1..=64).contains(&nodes) {
                return Err(Usage("--nodes takes 1 to 64".into()).into());
            }
            api::tls::create_ca(&dir)?;
            (dir, (1..=nodes).collect::<Vec<u64>>(), hosts, json)
        }
        CertsCmd::Node {
            dir,
            id,
            hosts,
            json,
        } => (dir, vec![id], hosts, json),
    };
    let mut written = Vec::new();
    for id in ids {
        written.push(api::tls::create_node(&dir, id, &hosts)?);
    }
    if json_out {
        println!(
            "{}",
            json!({"dir": dir, "ca": dir.join("ca.pem"), "nodes": written})
        );
    } else {
        for p in &written {
            println!("wrote {} (and its .key, mode 0600)", p.display());
        }
        println!(
            "start each node with --tls-dir {}; clients use --ca {}",
            dir.display(),
            dir.join("ca.pem").display()
        );
    }
    Ok(Exit(0))
}

#[derive(Subcommand, Debug)]
pub enum ClientsCmd {
    /// Register a client's public key with a role (replicated through the log).
    Add {
        /// Public key as 64 hex digits…
        #[arg(
            long,
            conflicts_with = "key_file",
            required_unless_present = "key_file"
        )]
        public_key: Option<String>,
        /// …or the client's key file.
        #[arg(long)]
        key_file: Option<PathBuf>,
        #[arg(long, value_enum)]
        role: Role,
        #[arg(long)]
        name: String,
    },
    /// Revoke a client's key.
    Revoke {
        #[arg(
            long,
            conflicts_with = "key_file",
            required_unless_present = "key_file"
        )]
        public_key: Option<String>,
        #[arg(long)]
        key_file: Option<PathBuf>,
    },
    /// List registered clients.
    List,
}

pub fn keys(cmd: KeysCmd) -> Result<Exit> {
    match cmd {
        KeysCmd::Gen {
            out,
            json: json_out,
        } => {
            if out.exists() {
                bail!("{} exists; refusing to overwrite a key", out.display());
            }
            let k = client::generate_key_file(&out)?;
            let pk = hex::encode(k.verifying_key().to_bytes());
            if json_out {
                println!("{}", json!({"path": out, "public_key": pk}));
            } else {
                println!("wrote {} (mode 0600)\npublic key: {pk}", out.display());
            }
            Ok(Exit(0))
        }
    }
}

pub async fn clients(conn: &Conn, cmd: ClientsCmd) -> Result<Exit> {
    let c = conn.client()?;
    match cmd {
        ClientsCmd::Add {
            public_key,
            key_file,
            role,
            name,
        } => {
            let pk = pubkey(&public_key, &key_file)?;
            let role = match role {
                Role::Payments => ledger::ClientRole::Payments,
                Role::Finance => ledger::ClientRole::FinanceRead,
                Role::Admin => ledger::ClientRole::Admin,
            };
            let o = c.register_client(&pk, role, &name).await?;
            Ok(report(conn, "client", &o))
        }
        ClientsCmd::Revoke {
            public_key,
            key_file,
        } => {
            let pk = pubkey(&public_key, &key_file)?;
            let o = c.revoke_client(&pk).await?;
            Ok(report(conn, "revoke", &o))
        }
        ClientsCmd::List => {
            let list = c.list_clients().await?;
            let v: Vec<Value> = list
                .iter()
                .map(|k| json!({"public_key": hex::encode(&k.public_key), "role": name::<ledger::ClientRole>(k.role), "name": k.name, "revoked": k.revoked, "registered_ns": k.registered_ns}))
                .collect();
            if conn.json {
                println!("{}", json!({ "clients": v }));
            } else {
                for k in &list {
                    println!(
                        "{}  {:<9} {}{}",
                        hex::encode(&k.public_key),
                        name::<ledger::ClientRole>(k.role),
                        k.name,
                        if k.revoked { "  (revoked)" } else { "" }
                    );
                }
            }
            Ok(Exit(0))
        }
    }
}
