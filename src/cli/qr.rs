//! `suanpan qr`: EMV QR merchant-presented payloads — parse one, make a merchant's static code, or
//! create a QR order and show its code (printed, drawn in the terminal, or written as PNG / SVG).

use std::path::Path;

use super::*;
use ledger::emv::{self, DataObject};

#[derive(Subcommand, Debug)]
pub enum QrCmd {
    /// Validate an EMV QR (merchant-presented) payload and print every data object, nested
    /// templates too; exit 1 naming the reason when it is not valid. Needs no cluster.
    Parse { payload: String },
    /// A merchant's static code (point of initiation 11: the payer enters the amount): print the
    /// payload and draw it in the terminal, or write it as an image.
    Static {
        /// The merchant account id.
        #[arg(long)]
        merchant: String,
        /// Write a scannable PNG here.
        #[arg(long)]
        png: Option<PathBuf>,
        /// Write a scannable SVG here.
        #[arg(long)]
        svg: Option<PathBuf>,
    },
    /// Create a QR order (point of initiation 12: payable once, for this amount) and print its
    /// payload, drawn in the terminal or written as an image.
    Order {
        /// Order id (the idempotency key: retry with the same id); generated and printed when
        /// omitted.
        #[arg(long)]
        id: Option<String>,
        /// The merchant account id.
        #[arg(long)]
        merchant: String,
        /// In the merchant's currency.
        #[arg(long)]
        amount: String,
        /// The merchant's order number (EMV tag 62/05): 1 to 25 characters, unique among its
        /// unpaid orders.
        #[arg(long)]
        reference: String,
        /// How long the code stays payable, in seconds of log time (default 7200, at most 604800).
        #[arg(long)]
        expires_in: Option<u64>,
        /// Write a scannable PNG here.
        #[arg(long)]
        png: Option<PathBuf>,
        /// Write a scannable SVG here.
        #[arg(long)]
        svg: Option<PathBuf>,
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

/// Pixels per QR module in PNG output, and the quiet zone in modules.
const PNG_MODULE_PIXELS: u32 = 8;
const QUIET_ZONE_MODULES: u32 = 4;

/// Writes a grayscale PNG of the code (black modules on white, with the quiet zone).
fn write_png(code: &qrcode::QrCode, path: &Path) -> Result<()> {
    let modules = code.width() as u32;
    let side = (modules + 2 * QUIET_ZONE_MODULES) * PNG_MODULE_PIXELS;
    let colors = code.to_colors();
    let mut pixels = vec![255u8; (side * side) as usize];
    for y in 0..side {
        for x in 0..side {
            let (mx, my) = (
                (x / PNG_MODULE_PIXELS).checked_sub(QUIET_ZONE_MODULES),
                (y / PNG_MODULE_PIXELS).checked_sub(QUIET_ZONE_MODULES),
            );
            if let (Some(mx), Some(my)) = (mx, my) {
                if mx < modules
                    && my < modules
                    && colors[(my * modules + mx) as usize] == qrcode::Color::Dark
                {
                    pixels[(y * side + x) as usize] = 0;
                }
            }
        }
    }
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), side, side);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc.write_header()?;
    w.write_image_data(&pixels)?;
    w.finish()?;
    Ok(())
}

/// Prints (or writes) a payload as a QR code; `extra` is merged into the JSON output.
fn show(
    conn: &Conn,
    payload: &str,
    png: Option<&Path>,
    svg: Option<&Path>,
    extra: Option<Value>,
) -> Result<()> {
    let code = qrcode::QrCode::new(payload.as_bytes()).context("encoding the QR code")?;
    if let Some(p) = png {
        write_png(&code, p)?;
    }
    if let Some(p) = svg {
        let image = code
            .render::<qrcode::render::svg::Color>()
            .quiet_zone(true)
            .min_dimensions(256, 256)
            .build();
        std::fs::write(p, image).with_context(|| format!("writing {}", p.display()))?;
    }
    if conn.json {
        let mut v = extra.unwrap_or_else(|| json!({}));
        v["payload"] = json!(payload);
        v["png"] = json!(png);
        v["svg"] = json!(svg);
        println!("{v}");
    } else {
        println!("{payload}");
        if png.is_none() && svg.is_none() {
            let art = code
                .render::<qrcode::render::unicode::Dense1x2>()
                .dark_color(qrcode::render::unicode::Dense1x2::Light)
                .light_color(qrcode::render::unicode::Dense1x2::Dark)
                .quiet_zone(true)
                .build();
            println!("{art}");
        }
    }
    Ok(())
}

pub async fn qr(conn: &Conn, cmd: QrCmd) -> Result<Exit> {
    match cmd {
        QrCmd::Parse { payload } => match emv::parse(&payload) {
            Ok(objects) => {
                let crc = &payload[payload.len() - 4..];
                if conn.json {
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
                if conn.json {
                    println!(
                        "{}",
                        json!({"valid": false, "error": e.name(), "message": e.to_string()})
                    );
                }
                eprintln!("error: {}: {e}", e.name());
                Ok(Exit(1))
            }
        },
        QrCmd::Static { merchant, png, svg } => {
            let id = parse_id(&merchant)?;
            let c = conn.client()?;
            let r = c.get_merchants(&[id]).await?;
            let Some(m) = r.merchants.first() else {
                return not_found_or(
                    conn,
                    client::ClientError::Status(tonic::Status::not_found(format!(
                        "merchant {id} not found"
                    ))),
                );
            };
            let profile = ledger::MerchantProfile {
                account: id,
                name: m.name.clone(),
                city: m.city.clone(),
                mcc: m.mcc.clone(),
                country: m.country.clone(),
                fee_bps: m.fee_bps,
                fee_account: None,
                created_ns: m.created_ns,
            };
            let currency = ledger::Currency::from_code(&m.currency)
                .ok_or_else(|| anyhow!("merchant {id} has an unknown currency {}", m.currency))?;
            let payload = emv::merchant_payload(&profile, currency, None)
                .map_err(|e| anyhow!("building the payload: {e}"))?;
            show(conn, &payload, png.as_deref(), svg.as_deref(), None)?;
            Ok(Exit(0))
        }
        QrCmd::Order {
            id,
            merchant,
            amount,
            reference,
            expires_in,
            png,
            svg,
        } => {
            let (id, merchant) = (id_or_new(&id)?, parse_id(&merchant)?);
            let c = conn.client()?;
            let r = c.get_merchants(&[merchant]).await?;
            let Some(m) = r.merchants.first() else {
                return not_found_or(
                    conn,
                    client::ClientError::Status(tonic::Status::not_found(format!(
                        "merchant {merchant} not found"
                    ))),
                );
            };
            let cmd = ops::create_order(id, merchant, &amount, &m.currency, &reference, expires_in);
            let o = c.submit_one(cmd).await?;
            if !o.is_ok() {
                return Ok(report(conn, "order", &o));
            }
            let orders = c.get_orders(&[id]).await?;
            let payload = orders
                .orders
                .first()
                .map(|o| o.payload.clone())
                .filter(|p| !p.is_empty())
                .ok_or_else(|| anyhow!("order {id} was created but has no payload"))?;
            if !conn.json {
                println!("order {id}: ok (index {})", o.applied_index);
            }
            show(
                conn,
                &payload,
                png.as_deref(),
                svg.as_deref(),
                Some(outcome_json(&o)),
            )?;
            Ok(Exit(0))
        }
    }
}
