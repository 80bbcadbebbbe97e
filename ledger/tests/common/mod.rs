//! Builders shared by the ledger's tests.
#![allow(dead_code)]

use std::str::FromStr;

use ledger::*;
use rust_decimal::Decimal;

pub const SEC: u64 = 1_000_000_000;
pub const T0: u64 = 1_790_000_000 * SEC;

pub fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

pub fn id(n: u128) -> Id {
    Id(n)
}

pub fn account(n: u128, currency: &str, kind: AccountKind) -> Command {
    Command::CreateAccount(CreateAccount::basic(Id(n), currency, kind))
}

pub fn wallet(n: u128, currency: &str) -> Command {
    account(n, currency, AccountKind::Wallet)
}

pub fn system(n: u128, currency: &str) -> Command {
    account(n, currency, AccountKind::System)
}

pub fn with<F: FnOnce(&mut CreateAccount)>(mut c: Command, f: F) -> Command {
    if let Command::CreateAccount(a) = &mut c {
        f(a);
    }
    c
}

pub fn transfer(n: u128, debit: u128, credit: u128, amount: &str) -> Command {
    Command::CreateTransfer(CreateTransfer {
        id: Id(n),
        legs: vec![LegSpec {
            debit: Id(debit),
            credit: Id(credit),
            amount: d(amount),
            currency: None,
        }],
        pending_timeout_seconds: None,
        reference: String::new(),
    })
}

pub fn legs(n: u128, legs: &[(u128, u128, &str)]) -> Command {
    Command::CreateTransfer(CreateTransfer {
        id: Id(n),
        legs: legs
            .iter()
            .map(|(a, b, m)| LegSpec {
                debit: Id(*a),
                credit: Id(*b),
                amount: d(m),
                currency: None,
            })
            .collect(),
        pending_timeout_seconds: None,
        reference: String::new(),
    })
}

pub fn pending(n: u128, debit: u128, credit: u128, amount: &str, timeout_s: u64) -> Command {
    Command::CreateTransfer(CreateTransfer {
        id: Id(n),
        legs: vec![LegSpec {
            debit: Id(debit),
            credit: Id(credit),
            amount: d(amount),
            currency: None,
        }],
        pending_timeout_seconds: Some(timeout_s),
        reference: String::new(),
    })
}

pub fn post(n: u128, pending: u128, amount: Option<&str>) -> Command {
    Command::PostPending(PostPending {
        id: Id(n),
        pending_id: Id(pending),
        amount: amount.map(d),
        currency: None,
    })
}

pub fn void(n: u128, pending: u128) -> Command {
    Command::VoidPending(VoidPending {
        id: Id(n),
        pending_id: Id(pending),
    })
}

pub fn status(n: u128, account: u128, status: AccountStatus) -> Command {
    Command::SetAccountStatus(SetAccountStatus {
        id: Id(n),
        account: Id(account),
        status,
    })
}

/// A ledger over a memory store that applies batches at successive indexes and one-second steps.
pub struct Harness {
    pub ledger: Ledger<MemStore>,
    pub index: u64,
    pub now: u64,
}

impl Harness {
    pub fn new() -> Harness {
        Harness {
            ledger: Ledger::open(MemStore::new()).unwrap(),
            index: 0,
            now: T0,
        }
    }
    pub fn apply(&mut self, commands: Vec<Command>) -> Vec<ResultCode> {
        self.index += 1;
        self.now += SEC;
        let out = self
            .ledger
            .apply(
                self.index,
                &Batch {
                    timestamp_ns: self.now,
                    seed: self.index,
                    commands,
                },
            )
            .unwrap();
        out.results.iter().map(|r| r.code).collect()
    }
    pub fn one(&mut self, c: Command) -> ResultCode {
        self.apply(vec![c])[0]
    }
    pub fn advance(&mut self, seconds: u64) {
        self.now += seconds * SEC;
    }
    pub fn balance(&self, n: u128) -> Decimal {
        self.ledger.account(Id(n)).unwrap().balance()
    }
    pub fn available(&self, n: u128) -> Decimal {
        self.ledger.account(Id(n)).unwrap().available()
    }
    /// Funds wallet `n` from a bank (system, credits-must-not-exceed... no flag) account 1.
    pub fn fund(&mut self, tid: u128, n: u128, amount: &str) {
        assert_eq!(self.one(transfer(tid, 1, n, amount)), ResultCode::Ok);
    }
}
