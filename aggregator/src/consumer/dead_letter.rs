//! Dead letters: refused events produced to the dead-letter topic in the format every
//! role shares ([`mieruka_ingest::kafka::dead_letter`]). Those refused on reading are
//! acknowledged before the commit that moves their partition past them; those the store
//! refuses at commit time follow it, best effort.

use std::collections::VecDeque;
use std::time::Duration;

use mieruka_ingest::{Rejection, Status};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::DeliveryFuture;

use super::batch::Pending;
use super::commit::AttemptError;
use super::run::Aggregator;

impl Aggregator {
    /// Produces the batch's invalid events to the dead-letter topic (once each), and
    /// awaits the broker: they are acknowledged before the commit that moves the
    /// partition past them.
    pub(super) fn dead_letter_invalid(&self, batch: &mut [Pending]) -> Result<(), AttemptError> {
        let todo: Vec<usize> = batch
            .iter()
            .enumerate()
            .filter(|(_, m)| !m.dead_lettered && m.item.outcome.is_err())
            .map(|(i, _)| i)
            .collect();
        if todo.is_empty() {
            return Ok(());
        }
        if self.dead_letter.is_some() {
            let entries: Vec<(&Pending, &Rejection)> = todo
                .iter()
                .filter_map(|&i| {
                    let m = &batch[i];
                    m.item.outcome.as_ref().err().map(|r| (m, r))
                })
                .collect();
            self.dead_letters(&entries)
                .map_err(|e| AttemptError::Transient(format!("dead-letter topic: {e}")))?;
        }
        for i in todo {
            batch[i].dead_lettered = true;
        }
        Ok(())
    }

    /// Produces the refusals known only at commit time to the dead-letter topic (best
    /// effort: they are in the `rejected` table already).
    pub(super) fn dead_letter_late(&self, batch: &[Pending], statuses: &[Status]) {
        if self.dead_letter.is_none() {
            return;
        }
        let late: Vec<(&Pending, &Rejection)> = batch
            .iter()
            .zip(statuses)
            .filter_map(|(m, s)| match (s, &m.item.outcome) {
                (Status::Rejected(r), Ok(_)) => Some((m, r)),
                _ => None,
            })
            .collect();
        if !late.is_empty() {
            if let Err(e) = self.dead_letters(&late) {
                tracing::warn!(error = %e, count = late.len(), "Cannot produce refused events to the dead-letter topic; they are in the rejected table.");
            }
        }
    }

    /// Produces rejected events to the dead-letter topic and awaits every acknowledgement.
    fn dead_letters(&self, entries: &[(&Pending, &Rejection)]) -> Result<(), String> {
        let Some((producer, topic)) = &self.dead_letter else {
            return Ok(());
        };
        self.handle.block_on(async {
            let mut pending: VecDeque<DeliveryFuture> = VecDeque::new();
            for (m, r) in entries {
                let letter = mieruka_ingest::kafka::dead_letter(
                    &m.item,
                    r,
                    m.key.as_deref(),
                    Some(m.raw.as_slice()),
                );
                let mut record = letter.record(topic);
                loop {
                    match producer.send_result(record) {
                        Ok(f) => {
                            pending.push_back(f);
                            break;
                        }
                        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                            record = back;
                            match pending.pop_front() {
                                Some(f) => settle(f).await?,
                                None => tokio::time::sleep(Duration::from_millis(10)).await,
                            }
                        }
                        Err((e, _)) => return Err(e.to_string()),
                    }
                }
            }
            for f in pending {
                settle(f).await?;
            }
            Ok(())
        })
    }
}

/// Waits for one dead-letter delivery report.
async fn settle(f: DeliveryFuture) -> Result<(), String> {
    match f.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => Err(e.to_string()),
        Err(_) => Err("the producer shut down".to_owned()),
    }
}
