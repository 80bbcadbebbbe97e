//! The batcher: coalesces concurrent `submit` calls into one `Submit` RPC, and concurrent
//! `submit_transfers` calls into one `SubmitTransfers` RPC (one batcher per form: the two never
//! share a request).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Semaphore};

use super::core::Core;
use super::{ClientError, CommandOutcome};
use crate::pb;
use crate::wire::TransferRecord;

/// What a batcher coalesces: the items of one request form, and the one RPC that sends them.
pub(super) trait Item: Sized + Send + Sync + 'static {
    fn send(
        core: &Core,
        items: &[Self],
    ) -> impl Future<Output = Result<Vec<CommandOutcome>, ClientError>> + Send;
}

impl Item for pb::Command {
    fn send(
        core: &Core,
        items: &[Self],
    ) -> impl Future<Output = Result<Vec<CommandOutcome>, ClientError>> + Send {
        core.submit_direct(items)
    }
}

impl Item for TransferRecord {
    fn send(
        core: &Core,
        items: &[Self],
    ) -> impl Future<Output = Result<Vec<CommandOutcome>, ClientError>> + Send {
        core.submit_transfers(items)
    }
}

pub(super) struct Pending<T> {
    pub(super) commands: Vec<T>,
    pub(super) reply: oneshot::Sender<Result<Vec<CommandOutcome>, ClientError>>,
}

/// Coalesces concurrent calls of one form.
pub(super) async fn batcher<T: Item>(core: Arc<Core>, mut rx: mpsc::Receiver<Pending<T>>) {
    let linger = Duration::from_micros(core.cfg.batch_linger_us);
    let max = core.cfg.max_batch_commands.max(1);
    let in_flight = Arc::new(Semaphore::new(core.cfg.max_in_flight_batches.max(1)));
    let mut carry: Option<Pending<T>> = None;
    let mut closed = false;
    while !closed || carry.is_some() {
        let first = match carry.take() {
            Some(p) => p,
            None => match rx.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        let mut n = first.commands.len();
        let mut group = vec![first];
        let deadline = tokio::time::Instant::now() + linger;
        while n < max && !closed {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(p)) => {
                    if n + p.commands.len() > max {
                        carry = Some(p);
                        break;
                    }
                    n += p.commands.len();
                    group.push(p);
                }
                Ok(None) => closed = true,
                Err(_) => break,
            }
        }
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let core = core.clone();
        tokio::spawn(async move {
            send_group(&core, group).await;
            drop(permit);
        });
    }
}

async fn send_group<T: Item>(core: &Core, group: Vec<Pending<T>>) {
    let lens: Vec<usize> = group.iter().map(|p| p.commands.len()).collect();
    let mut replies = Vec::with_capacity(group.len());
    let mut all = Vec::with_capacity(lens.iter().sum());
    for p in group {
        replies.push(p.reply);
        all.extend(p.commands);
    }
    match T::send(core, &all).await {
        Ok(mut results) => {
            for (reply, len) in replies.into_iter().zip(lens).rev() {
                let mine = results.split_off(results.len() - len);
                let _ = reply.send(Ok(mine));
            }
        }
        Err(ClientError::Status(s))
            if s.code() == tonic::Code::InvalidArgument && replies.len() > 1 =>
        {
            // Someone's input is invalid: isolate it by sending each caller's part alone.
            let mut start = 0;
            let each = lens.iter().map(|len| {
                start += len;
                T::send(core, &all[start - len..start])
            });
            let outcomes = futures::future::join_all(each).await;
            for (reply, r) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(r);
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}
