//! EMV QR merchant-presented mode (MPM) payloads: the one place that builds and parses them.
//!
//! A payload is a sequence of data objects `ID LEN VALUE`: a 2-digit id, a 2-digit length counted in
//! characters (not bytes), and the value. Templates (26–51 merchant account information, 62
//! additional data, 64 language template, 80–99 unreserved) hold objects in the same format. `00`
//! (payload format indicator, `01`) comes first and `63` (the CRC) last; the whole payload is at most
//! [`PAYLOAD_CHARS_MAX`] characters. The CRC is CRC-16/CCITT-FALSE over the UTF-8 bytes of every
//! object before it plus the literal `6304`, written as four upper-case hex digits.
//!
//! Parsing never panics (a fuzz target checks it) and names what is wrong: [`EmvError`]. A payload
//! that parses re-encodes to exactly the same string.

use std::fmt::Write as _;

/// Longest payload, in characters.
pub const PAYLOAD_CHARS_MAX: usize = 512;
/// Longest value of one data object, in characters (the length field has two digits).
pub const VALUE_CHARS_MAX: usize = 99;
/// Deepest nesting the parser follows (templates inside templates are not used by EMV MPM).
const DEPTH_MAX: usize = 2;

pub const ID_PAYLOAD_FORMAT: &str = "00";
pub const ID_POINT_OF_INITIATION: &str = "01";
pub const ID_MCC: &str = "52";
pub const ID_CURRENCY: &str = "53";
pub const ID_AMOUNT: &str = "54";
pub const ID_COUNTRY: &str = "58";
pub const ID_MERCHANT_NAME: &str = "59";
pub const ID_MERCHANT_CITY: &str = "60";
pub const ID_ADDITIONAL_DATA: &str = "62";
pub const ID_CRC: &str = "63";
/// Sub-id of the reference label (the merchant's order number) inside template 62.
pub const SUB_ID_REFERENCE: &str = "05";
/// Point of initiation: a static code (the payer enters the amount) or one for a single payment.
pub const POI_STATIC: &str = "11";
pub const POI_DYNAMIC: &str = "12";

/// One data object; `children` is set for a template (its value parsed as objects).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataObject {
    pub id: String,
    pub value: String,
    pub children: Option<Vec<DataObject>>,
}

impl DataObject {
    pub fn new(id: &str, value: impl Into<String>) -> DataObject {
        DataObject {
            id: id.to_string(),
            value: value.into(),
            children: None,
        }
    }

    /// A template: its value is the encoding of `children`.
    pub fn template(id: &str, children: Vec<DataObject>) -> Result<DataObject, EmvError> {
        let value = encode_objects(&children)?;
        Ok(DataObject {
            id: id.to_string(),
            value,
            children: Some(children),
        })
    }

    /// The child with `id`, for a template.
    pub fn child(&self, id: &str) -> Option<&DataObject> {
        self.children.as_ref()?.iter().find(|c| c.id == id)
    }
}

/// Why a payload is not a valid EMV MPM payload. `name()` is stable (CLI and JSON output).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EmvError {
    #[error("payload is empty")]
    Empty,
    #[error("payload has {chars} characters, over the limit of {PAYLOAD_CHARS_MAX}")]
    TooLong { chars: usize },
    #[error("object at character {at}: the id must be two digits")]
    BadId { at: usize },
    #[error("object {id} at character {at}: the length must be two digits from 01")]
    BadLength { id: String, at: usize },
    #[error("object {id} at character {at}: length {len} runs past the end of the payload")]
    WrongLength { id: String, at: usize, len: usize },
    #[error("the first object must be 00 (payload format indicator) with value 01")]
    MissingPayloadFormat,
    #[error("object {id} appears twice")]
    DuplicateObject { id: String },
    #[error("the payload has no 63 (CRC) object")]
    MissingCrc,
    #[error("63 (CRC) must be the last object")]
    CrcNotLast,
    #[error("{chars} characters after the CRC are not a data object")]
    TrailingData { chars: usize },
    #[error("CRC is {found}, the payload's is {expected}")]
    WrongCrc { expected: String, found: String },
    #[error("template {id} does not hold valid data objects: {reason}")]
    BadTemplate { id: String, reason: String },
    #[error("object {id}: {reason}")]
    BadValue { id: String, reason: &'static str },
}

impl EmvError {
    /// Stable snake_case name of the reason.
    pub fn name(&self) -> &'static str {
        match self {
            EmvError::Empty => "empty",
            EmvError::TooLong { .. } => "too_long",
            EmvError::BadId { .. } => "bad_id",
            EmvError::BadLength { .. } => "bad_length",
            EmvError::WrongLength { .. } => "wrong_length",
            EmvError::MissingPayloadFormat => "missing_payload_format",
            EmvError::DuplicateObject { .. } => "duplicate_object",
            EmvError::MissingCrc => "missing_crc",
            EmvError::CrcNotLast => "crc_not_last",
            EmvError::TrailingData { .. } => "trailing_data",
            EmvError::WrongCrc { .. } => "wrong_crc",
            EmvError::BadTemplate { .. } => "bad_template",
            EmvError::BadValue { .. } => "bad_value",
        }
    }
}

/// CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final xor.
pub fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

fn is_template(id: &str) -> bool {
    matches!(id.parse::<u8>(), Ok(26..=51 | 62 | 64 | 80..=99))
}

/// Encodes objects (no CRC): `ID LEN VALUE` each.
pub fn encode_objects(objects: &[DataObject]) -> Result<String, EmvError> {
    let mut out = String::new();
    for o in objects {
        let len = o.value.chars().count();
        if o.id.len() != 2 || !o.id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(EmvError::BadId {
                at: out.chars().count(),
            });
        }
        if len == 0 || len > VALUE_CHARS_MAX {
            return Err(EmvError::BadLength {
                id: o.id.clone(),
                at: out.chars().count(),
            });
        }
        write!(out, "{}{len:02}{}", o.id, o.value).expect("writing to a String");
    }
    Ok(out)
}

/// Builds a payload: the objects (which must start with `00`), then `63` with the CRC.
pub fn build(objects: &[DataObject]) -> Result<String, EmvError> {
    if objects.first().map(|o| (o.id.as_str(), o.value.as_str())) != Some((ID_PAYLOAD_FORMAT, "01"))
    {
        return Err(EmvError::MissingPayloadFormat);
    }
    let mut s = encode_objects(objects)?;
    s.push_str("6304");
    let crc = crc16(s.as_bytes());
    write!(s, "{crc:04X}").expect("writing to a String");
    let chars = s.chars().count();
    if chars > PAYLOAD_CHARS_MAX {
        return Err(EmvError::TooLong { chars });
    }
    Ok(s)
}

/// Splits characters into objects; `depth` counts template levels.
fn parse_objects(chars: &[char], offset: usize, depth: usize) -> Result<Vec<DataObject>, EmvError> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let at = offset + i;
        let id: String = chars
            .get(i..i + 2)
            .ok_or(EmvError::BadId { at })?
            .iter()
            .collect();
        if !id.bytes().all(|b| b.is_ascii_digit()) || id.len() != 2 {
            return Err(EmvError::BadId { at });
        }
        let len_s: String = chars
            .get(i + 2..i + 4)
            .ok_or_else(|| EmvError::BadLength { id: id.clone(), at })?
            .iter()
            .collect();
        let len: usize = match len_s.parse() {
            Ok(n) if n > 0 && len_s.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => return Err(EmvError::BadLength { id, at }),
        };
        let value_chars = chars
            .get(i + 4..i + 4 + len)
            .ok_or_else(|| EmvError::WrongLength {
                id: id.clone(),
                at,
                len,
            })?;
        let value: String = value_chars.iter().collect();
        let children = if depth < DEPTH_MAX && is_template(&id) {
            match parse_objects(value_chars, at + 4, depth + 1) {
                Ok(c) => Some(c),
                Err(e) => {
                    return Err(EmvError::BadTemplate {
                        id,
                        reason: e.to_string(),
                    })
                }
            }
        } else {
            None
        };
        out.push(DataObject {
            id,
            value,
            children,
        });
        i += 4 + len;
    }
    Ok(out)
}

/// Parses and checks a payload: structure, `00` first, `63` last with the right CRC, no duplicate
/// root objects, and the values of the objects this ledger reads. Returns the objects without `63`.
pub fn parse(payload: &str) -> Result<Vec<DataObject>, EmvError> {
    let chars: Vec<char> = payload.chars().take(PAYLOAD_CHARS_MAX + 1).collect();
    if chars.is_empty() {
        return Err(EmvError::Empty);
    }
    if chars.len() > PAYLOAD_CHARS_MAX {
        return Err(EmvError::TooLong {
            chars: payload.chars().count(),
        });
    }
    // Walk the root objects up to the CRC; what follows it decides between "63 not last" and
    // "trailing data".
    let mut objects = Vec::new();
    let mut i = 0;
    let mut crc: Option<(usize, String)> = None;
    while i < chars.len() {
        let rest = &chars[i..];
        let first = parse_objects(rest.get(..4.min(rest.len())).unwrap_or(&[]), i, DEPTH_MAX)
            .err()
            .filter(|e| !matches!(e, EmvError::WrongLength { .. }));
        if let Some(e) = first {
            return Err(e);
        }
        let len: usize = rest[2..4].iter().collect::<String>().parse().unwrap_or(0);
        let end = 4 + len;
        if end > rest.len() {
            let id: String = rest[..2].iter().collect();
            return Err(EmvError::WrongLength { id, at: i, len });
        }
        let mut one = parse_objects(&rest[..end], i, 0)?;
        let o = one.pop().expect("one object parsed");
        if o.id == ID_CRC {
            crc = Some((i, o.value));
            i += end;
            break;
        }
        objects.push(o);
        i += end;
    }
    if i < chars.len() {
        let tail = &chars[i..];
        return Err(match parse_objects(tail, i, DEPTH_MAX) {
            Ok(_) => EmvError::CrcNotLast,
            Err(_) => EmvError::TrailingData { chars: tail.len() },
        });
    }
    let Some((crc_at, found)) = crc else {
        return Err(EmvError::MissingCrc);
    };
    match objects.first() {
        Some(o) if o.id == ID_PAYLOAD_FORMAT && o.value == "01" => {}
        _ => return Err(EmvError::MissingPayloadFormat),
    }
    let covered: String = chars[..crc_at + 4].iter().collect();
    let expected = format!("{:04X}", crc16(covered.as_bytes()));
    if found != expected {
        return Err(EmvError::WrongCrc { expected, found });
    }
    for (n, o) in objects.iter().enumerate() {
        if objects[..n].iter().any(|p| p.id == o.id) {
            return Err(EmvError::DuplicateObject { id: o.id.clone() });
        }
    }
    for o in &objects {
        check_value(o)?;
    }
    Ok(objects)
}

/// The value rules of the objects the ledger reads.
fn check_value(o: &DataObject) -> Result<(), EmvError> {
    let bad = |reason| {
        Err(EmvError::BadValue {
            id: o.id.clone(),
            reason,
        })
    };
    let v = o.value.as_str();
    let digits = |n: usize| v.len() == n && v.bytes().all(|b| b.is_ascii_digit());
    match o.id.as_str() {
        ID_POINT_OF_INITIATION if v != POI_STATIC && v != POI_DYNAMIC => {
            bad("point of initiation is 11 (static) or 12 (dynamic)")
        }
        ID_MCC if !digits(4) => bad("a merchant category code is 4 digits"),
        ID_CURRENCY if !digits(3) => bad("a currency is an ISO 4217 numeric code (3 digits)"),
        ID_AMOUNT if !amount_ok(v) => {
            bad("an amount is up to 13 characters: digits and at most one '.'")
        }
        ID_COUNTRY if !(v.len() == 2 && v.bytes().all(|b| b.is_ascii_uppercase())) => {
            bad("a country is an ISO 3166 alpha-2 code")
        }
        ID_MERCHANT_NAME if v.chars().count() > 25 => {
            bad("a merchant name is at most 25 characters")
        }
        ID_MERCHANT_CITY if v.chars().count() > 15 => {
            bad("a merchant city is at most 15 characters")
        }
        _ => Ok(()),
    }
}

fn amount_ok(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 13
        && v.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && v.bytes().filter(|b| *b == b'.').count() <= 1
        && v.bytes().any(|b| b.is_ascii_digit())
}

/// Globally unique identifier of this ledger's merchant account information (template 26, sub-id
/// 00); sub-id 01 holds the merchant account id and, in an order's code, sub-id 02 the order id.
pub const MERCHANT_ACCOUNT_GUI: &str = "com.suanpan";
const SUB_ID_MERCHANT: &str = "01";
const SUB_ID_ORDER: &str = "02";

/// The order a dynamic code is for: its id, amount (as printed in tag 54) and merchant order number.
#[derive(Clone, Copy, Debug)]
pub struct OrderQr<'a> {
    pub id: crate::Id,
    pub amount: &'a str,
    pub reference: &'a str,
}

/// The merchant-presented payload of a merchant: a static code (point of initiation 11, the payer
/// enters the amount) or, with `order`, one for a single order (12, the order id in template 26, the
/// amount in tag 54 and the merchant's order number in tag 62 sub-tag 05).
pub fn merchant_payload(
    m: &crate::MerchantProfile,
    currency: crate::Currency,
    order: Option<OrderQr<'_>>,
) -> Result<String, EmvError> {
    let mut account = vec![
        DataObject::new("00", MERCHANT_ACCOUNT_GUI),
        DataObject::new(SUB_ID_MERCHANT, m.account.to_string()),
    ];
    if let Some(o) = order {
        account.push(DataObject::new(SUB_ID_ORDER, o.id.to_string()));
    }
    let mut objects = vec![
        DataObject::new(ID_PAYLOAD_FORMAT, "01"),
        DataObject::new(
            ID_POINT_OF_INITIATION,
            if order.is_some() {
                POI_DYNAMIC
            } else {
                POI_STATIC
            },
        ),
        DataObject::template("26", account)?,
        DataObject::new(ID_MCC, m.mcc.clone()),
        DataObject::new(ID_CURRENCY, format!("{:03}", currency.numeric())),
    ];
    if let Some(o) = order {
        objects.push(DataObject::new(ID_AMOUNT, o.amount));
    }
    objects.push(DataObject::new(ID_COUNTRY, m.country.clone()));
    objects.push(DataObject::new(ID_MERCHANT_NAME, m.name.clone()));
    objects.push(DataObject::new(ID_MERCHANT_CITY, m.city.clone()));
    if let Some(o) = order {
        objects.push(DataObject::template(
            ID_ADDITIONAL_DATA,
            vec![DataObject::new(SUB_ID_REFERENCE, o.reference)],
        )?);
    }
    let payload = build(&objects)?;
    // What we print must be what we accept.
    parse(&payload)?;
    Ok(payload)
}

/// What a payer's app reads from a Suanpan merchant code (see [`scan`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scanned {
    pub merchant: crate::Id,
    /// ISO 4217 numeric code from tag 53.
    pub currency_numeric: u16,
    /// `Some` for a dynamic code (point of initiation 12): the order, its amount text (tag 54) and
    /// its merchant order number (tag 62/05).
    pub order: Option<(crate::Id, String, String)>,
}

/// Why a payload is not a payable Suanpan merchant code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    #[error(transparent)]
    Emv(#[from] EmvError),
    #[error("not a Suanpan merchant code: {0}")]
    NotOurs(&'static str),
}

/// Parses a payload and reads the fields a payment needs. Pure, so every replica reads the same.
pub fn scan(payload: &str) -> Result<Scanned, ScanError> {
    let objects = parse(payload)?;
    let account = objects
        .iter()
        .filter(|o| o.children.is_some())
        .find(|o| {
            o.child("00")
                .is_some_and(|g| g.value == MERCHANT_ACCOUNT_GUI)
        })
        .ok_or(ScanError::NotOurs(
            "no com.suanpan merchant account template",
        ))?;
    let merchant = account
        .child(SUB_ID_MERCHANT)
        .and_then(|m| m.value.parse().ok())
        .ok_or(ScanError::NotOurs("merchant id"))?;
    let currency_numeric = find(&objects, ID_CURRENCY)
        .filter(|c| c.value.len() == 3)
        .and_then(|c| c.value.parse().ok())
        .ok_or(ScanError::NotOurs("currency (tag 53)"))?;
    let order = match find(&objects, ID_POINT_OF_INITIATION).map(|p| p.value.as_str()) {
        Some(POI_STATIC) | None => None,
        Some(POI_DYNAMIC) => {
            let id = account
                .child(SUB_ID_ORDER)
                .and_then(|o| o.value.parse().ok())
                .ok_or(ScanError::NotOurs("dynamic code without an order id"))?;
            let amount = find(&objects, ID_AMOUNT)
                .ok_or(ScanError::NotOurs("dynamic code without an amount"))?;
            let reference = find(&objects, ID_ADDITIONAL_DATA)
                .and_then(|a| a.child(SUB_ID_REFERENCE))
                .map_or(String::new(), |r| r.value.clone());
            Some((id, amount.value.clone(), reference))
        }
        Some(_) => return Err(ScanError::NotOurs("point of initiation")),
    };
    Ok(Scanned {
        merchant,
        currency_numeric,
        order,
    })
}

/// The value of root object `id`, if present.
pub fn find<'a>(objects: &'a [DataObject], id: &str) -> Option<&'a DataObject> {
    objects.iter().find(|o| o.id == id)
}

/// The body of the `emv_payload` fuzz target (and its corpus replay): parsing arbitrary input
/// never panics, and whatever parses is rebuilt to exactly the same payload.
pub fn fuzz_parse(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(objects) = parse(s) {
        assert_eq!(build(&objects).as_deref(), Ok(s), "parse/build round trip");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The public sample from the EMVCo specification (CRC A13A).
    const SAMPLE: &str = "00020101021229300012D156000000000510A93FO3230Q31280012D15600000001030812345678520441115802CN5914BEST TRANSPORT6007BEIJING64200002ZH0104最佳运输0202北京540523.7253031565502016233030412340603***0708A60086670902ME91320016A0112233449988770708123456786304A13A";

    #[test]
    fn crc_check_value() {
        assert_eq!(crc16(b"123456789"), 0x29B1);
    }

    #[test]
    fn the_emvco_sample_parses_and_round_trips() {
        let o = parse(SAMPLE).unwrap();
        assert_eq!(find(&o, ID_POINT_OF_INITIATION).unwrap().value, POI_DYNAMIC);
        assert_eq!(find(&o, ID_AMOUNT).unwrap().value, "23.72");
        assert_eq!(find(&o, ID_MERCHANT_NAME).unwrap().value, "BEST TRANSPORT");
        let lang = find(&o, "64").unwrap();
        assert_eq!(lang.child("01").unwrap().value, "最佳运输");
        let extra = find(&o, ID_ADDITIONAL_DATA).unwrap();
        assert_eq!(extra.child("03").unwrap().value, "1234");
        assert_eq!(build(&o).unwrap(), SAMPLE);
    }

    #[test]
    fn each_malformed_kind_is_named() {
        let body = &SAMPLE[..SAMPLE.len() - 4];
        let long = format!("{}{}", "0".repeat(600), SAMPLE);
        let no_crc = SAMPLE.replace("6304A13A", "");
        let extra_after = format!("{SAMPLE}0102AB");
        let trailing = format!("{SAMPLE}01");
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "empty"),
            (long, "too_long"),
            (format!("{body}A13B"), "wrong_crc"),
            (
                SAMPLE.replacen("000201", "000202", 1),
                "missing_payload_format",
            ),
            (SAMPLE.replacen("000201", "", 1), "missing_payload_format"),
            (no_crc, "missing_crc"),
            (extra_after, "crc_not_last"),
            (trailing, "trailing_data"),
            ("0002019999".to_string(), "wrong_length"),
            ("0x0201".to_string(), "bad_id"),
            ("00AA01".to_string(), "bad_length"),
            ("000001".to_string(), "bad_length"),
        ];
        for (payload, want) in cases {
            let e = parse(&payload).unwrap_err();
            assert_eq!(e.name(), want, "{payload:?}: {e}");
        }
    }

    #[test]
    fn built_payloads_parse_and_values_are_checked() {
        let objects = vec![
            DataObject::new(ID_PAYLOAD_FORMAT, "01"),
            DataObject::new(ID_POINT_OF_INITIATION, POI_DYNAMIC),
            DataObject::template("26", vec![DataObject::new("00", "com.suanpan")]).unwrap(),
            DataObject::new(ID_MCC, "5814"),
            DataObject::new(ID_CURRENCY, "156"),
            DataObject::new(ID_AMOUNT, "12.50"),
            DataObject::new(ID_COUNTRY, "CN"),
            DataObject::new(ID_MERCHANT_NAME, "小面馆"),
            DataObject::new(ID_MERCHANT_CITY, "重庆"),
            DataObject::template(
                ID_ADDITIONAL_DATA,
                vec![DataObject::new(SUB_ID_REFERENCE, "T-001")],
            )
            .unwrap(),
        ];
        let p = build(&objects).unwrap();
        assert_eq!(parse(&p).unwrap(), objects);
        let mut bad = objects.clone();
        bad[5] = DataObject::new(ID_AMOUNT, "1.2.3");
        let e = parse(&build(&bad).unwrap()).unwrap_err();
        assert_eq!(e.name(), "bad_value");
        let mut dup = objects.clone();
        dup.push(DataObject::new(ID_MCC, "5814"));
        assert_eq!(
            parse(&build(&dup).unwrap()).unwrap_err().name(),
            "duplicate_object"
        );
        assert!(build(&objects[1..]).is_err(), "00 must come first");
    }

    #[test]
    fn merchant_payloads_carry_the_profile() {
        let m = crate::MerchantProfile {
            account: crate::Id(0xABC),
            name: "小面馆".into(),
            city: "重庆".into(),
            mcc: "5814".into(),
            country: "CN".into(),
            fee_bps: 0,
            fee_account: None,
            created_ns: 0,
        };
        let cny = crate::Currency::from_code("CNY").unwrap();
        let static_code = merchant_payload(&m, cny, None).unwrap();
        let o = parse(&static_code).unwrap();
        assert_eq!(find(&o, ID_POINT_OF_INITIATION).unwrap().value, POI_STATIC);
        assert_eq!(
            scan(&static_code).unwrap(),
            Scanned {
                merchant: m.account,
                currency_numeric: 156,
                order: None
            }
        );
        assert_eq!(
            find(&o, "26").unwrap().child("01").unwrap().value,
            m.account.to_string()
        );
        assert_eq!(find(&o, ID_CURRENCY).unwrap().value, "156");
        assert!(find(&o, ID_AMOUNT).is_none());
        let order = OrderQr {
            id: crate::Id(0xDEF),
            amount: "12.50",
            reference: "T-001",
        };
        let dynamic = merchant_payload(&m, cny, Some(order)).unwrap();
        assert_eq!(
            scan(&dynamic).unwrap().order,
            Some((crate::Id(0xDEF), "12.50".into(), "T-001".into()))
        );
        // The EMVCo sample is valid EMV but not one of ours.
        assert!(matches!(scan(SAMPLE), Err(ScanError::NotOurs(_))));
        let o = parse(&dynamic).unwrap();
        assert_eq!(find(&o, ID_POINT_OF_INITIATION).unwrap().value, POI_DYNAMIC);
        assert_eq!(find(&o, ID_AMOUNT).unwrap().value, "12.50");
        let extra = find(&o, ID_ADDITIONAL_DATA).unwrap();
        assert_eq!(extra.child(SUB_ID_REFERENCE).unwrap().value, "T-001");
        let aud = crate::Currency::from_code("AUD").unwrap();
        let o = parse(&merchant_payload(&m, aud, None).unwrap()).unwrap();
        assert_eq!(find(&o, ID_CURRENCY).unwrap().value, "036");
    }

    #[test]
    fn arbitrary_input_never_panics() {
        let mut rng = crate::rng::SplitMix64::new(7);
        let alphabet: Vec<char> = "0123456789AB.*中 ".chars().collect();
        for _ in 0..20_000 {
            let n = rng.below(80) as usize;
            let s: String = (0..n)
                .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize])
                .collect();
            fuzz_parse(s.as_bytes());
            // Mutations of the sample.
            let mut chars: Vec<char> = SAMPLE.chars().collect();
            let at = rng.below(chars.len() as u64) as usize;
            chars[at] = alphabet[rng.below(alphabet.len() as u64) as usize];
            let m: String = chars.into_iter().collect();
            fuzz_parse(m.as_bytes());
        }
    }
}
