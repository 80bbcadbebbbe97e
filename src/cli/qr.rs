//! `suanpan qr`: EMV QR merchant-presented payloads.

use super::*;
use ledger::emv::{self, DataObject};

#[derive(Subcommand, Debug)]
pub enum QrCmd {
    /// Validate an EMV QR (merchant-presented) payload and print every data object, nested
    /// templates too; exit 1 naming the reason when it is not valid.
    Parse {
        payload: String,
        /// Print machine-readable JSON.
        #[arg(long)]
        json: bool,
    },
}

fn objects_json(objects: &[DataObject]) -> Value {
    Value::Array(
        objects
            .iter()
            .map(|o| {
                let mut v =
                    json!({"id": o.id, "length": o.value.chars().count(), "value": o.value});
                if let Some(c) = &o.children {
                    v["children"] = objects_json(c);
                }
                v
            })
            .collect(),
    )
}

fn print_objects(objects: &[DataObject], depth: usize) {
    for o in objects {
        let indent = "  ".repeat(depth);
        match &o.children {
            Some(c) => {
                println!("{indent}{} ({} chars)", o.id, o.value.chars().count());
                print_objects(c, depth + 1);
            }
            None => println!("{indent}{} {:?}", o.id, o.value),
        }
    }
}

pub fn qr(cmd: QrCmd) -> Result<Exit> {
    match cmd {
        QrCmd::Parse { payload, json } => match emv::parse(&payload) {
            Ok(objects) => {
                let crc = &payload[payload.len() - 4..];
                if json {
                    println!(
                        "{}",
                        json!({"valid": true, "objects": objects_json(&objects), "crc": crc})
                    );
                } else {
                    print_objects(&objects, 0);
                    println!("63 {crc:?} (CRC ok)");
                }
                Ok(Exit(0))
            }
            Err(e) => {
                if json {
                    println!(
                        "{}",
                        json!({"valid": false, "error": e.name(), "message": e.to_string()})
                    );
                }
                eprintln!("error: {}: {e}", e.name());
                Ok(Exit(1))
            }
        },
    }
}
