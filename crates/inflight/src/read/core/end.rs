//! The end of a reading: the damage nothing valid followed settled as a torn tail or as
//! corruption, and the plan a read-write open follows for the end of the log.

use super::*;

impl Reading {
    /// The segment whose end can be the end of the data: the last one read, if its header is
    /// valid.
    fn tail(&self) -> Option<(&str, u64)> {
        match &self.last {
            Some(Last {
                name,
                kind:
                    LastKind::Frames {
                        header: Some(_),
                        salt,
                        ..
                    },
                ..
            }) => Some((name.as_str(), *salt)),
            _ => None,
        }
    }

    /// The damaged bytes at the end of the tail segment that [`Reading::settle_the_end`] needs
    /// to see, as `(start, end)` offsets in its file; `None` when there are none, or too many
    /// for one frame (corruption without reading a byte).
    pub(crate) fn tail_damage(&self) -> Option<(u64, u64)> {
        let (name, _) = self.tail()?;
        let mut at_tail = self.pending.iter().filter(|d| d.segment == name);
        let first = at_tail.next()?;
        let end = at_tail.next_back().unwrap_or(first).end;
        (end - first.start <= UNSYNCED_TAIL_BYTES_MAX).then_some((first.start, end))
    }

    /// Damage with nothing valid after it. At the end of the tail segment it is the end of the
    /// data (a record still being written on a live log, a torn tail after a crash) if it is
    /// what one interrupted append can leave (`tail_bytes`, the range [`Reading::tail_damage`]
    /// asked for); anything else is corruption, reported where it lies.
    pub(crate) fn settle_the_end(
        &mut self,
        tail_bytes: Option<&[u8]>,
        visit: &mut (impl Visit + ?Sized),
    ) {
        let tail = self.tail().map(|(name, salt)| (name.to_string(), salt));
        let (at_tail, elsewhere): (Vec<Damage>, Vec<Damage>) = mem::take(&mut self.pending)
            .into_iter()
            .partition(|d| tail.as_ref().is_some_and(|(name, _)| *name == d.segment));
        self.pending = elsewhere;
        self.settle_pending(None, visit);
        let (Some(first), Some((_, salt))) = (at_tail.first(), tail) else {
            return;
        };
        let torn = tail_bytes.is_some_and(|bytes| is_torn_tail(&at_tail, bytes, salt));
        if torn {
            self.torn_tail = Some(TornTail {
                segment: first.segment.clone(),
                offset: first.start,
                bytes: at_tail.iter().map(|d| d.end - d.start).sum(),
                cut: false,
            });
            return;
        }
        let end = at_tail.last().map_or(0, |d| d.end);
        self.pending = at_tail;
        self.settle_pending(None, visit);
        // Reported: reading on goes on after it, and nothing is appended to the segment again.
        if let Some(Last {
            kind:
                LastKind::Frames {
                    resume,
                    resume_seq,
                    sealed,
                    ..
                },
            ..
        }) = &mut self.last
        {
            *resume = (*resume).max(end);
            *resume_seq = self.next_seq;
            *sealed = true;
        }
    }

    /// The end item: where the log ends now.
    pub(crate) fn end(&mut self, visit: &mut (impl Visit + ?Sized)) {
        let torn_tail = self.torn_tail.clone();
        let item = Item::End(EndSeen {
            last_seq: self.last_seq,
            last_ms: self.last_ms,
            torn_tail: torn_tail.as_ref(),
            running: self.set.len(),
        });
        Self::emit(&mut self.stopped, visit, &item);
    }

    /// What a read-write open does to the end of the log, after the end was settled;
    /// `last_bytes` is the last segment as read (there are some whenever it holds frames).
    pub(crate) fn end_of_log(&self, last_bytes: Option<FileBytes>) -> End {
        let Some(last) = &self.last else {
            return End::Fresh {
                segment_no: self.fresh_segment_no,
            };
        };
        let next = last.number + 1;
        let name = last.name.clone();
        let bytes = || last_bytes.expect("a segment with frames was read whole");
        match &last.kind {
            LastKind::Frames {
                header: Some(header),
                resume,
                sealed: false,
                ..
            } => End::Append {
                name,
                header: *header,
                end: *resume,
                bytes: bytes(),
            },
            LastKind::Frames { .. } => End::Seal {
                name,
                bytes: bytes(),
                next_segment_no: next,
            },
            LastKind::Short | LastKind::NotRegular => End::NewSegment {
                segment_no: next,
                remove: None,
            },
            LastKind::Unfinished { .. } => End::NewSegment {
                segment_no: last.number,
                remove: Some(name),
            },
        }
    }

    /// The unfinished last segment (its number and length), if the last read found one.
    pub(crate) fn unfinished(&self) -> Option<(u64, u64)> {
        match &self.last {
            Some(Last {
                number,
                kind: LastKind::Unfinished { len },
                ..
            }) => Some((*number, *len)),
            _ => None,
        }
    }

    /// Forgets the last segment (a writer replaced the unfinished one: it is read again).
    pub(crate) fn forget_last(&mut self) {
        self.last = None;
        self.torn_tail = None;
    }
}
