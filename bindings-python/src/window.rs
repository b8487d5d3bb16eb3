//! The last N publications of a topic, kept up to date in the background:
//! reading it never waits, which is what a Streamlit rerun needs.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::StreamExt;
use livegate_client::{Subscription, SubscriptionEvent};
use livegate_core::protocol::Publication as RustPublication;
use pyo3::prelude::*;
use pyo3::types::PyList;
use tokio::task::JoinHandle;

use crate::runtime;
use crate::types::{Names, Publication};

#[derive(Default)]
struct State {
    items: VecDeque<RustPublication>,
    /// Reconnects after which publications were missed for good.
    gaps: u64,
    /// Total publications received.
    received: u64,
    /// Why the subscription ended, if the gateway refused it.
    failure: Option<(String, String)>,
}

/// A topic's latest publications (`SyncClient.window`, `Client.window`).
#[pyclass(frozen, module = "livegate")]
pub struct Window {
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
    size: usize,
}

impl Window {
    pub fn start(mut sub: Subscription, size: usize) -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let feed = Arc::clone(&state);
        let task = runtime().spawn(async move {
            while let Some(event) = sub.next().await {
                let mut st = feed.lock().unwrap_or_else(PoisonError::into_inner);
                match event {
                    SubscriptionEvent::Publication(p) => {
                        if st.items.len() == size {
                            st.items.pop_front();
                        }
                        st.items.push_back(p);
                        st.received += 1;
                    }
                    SubscriptionEvent::Recovered {
                        recovered: false, ..
                    } => st.gaps += 1,
                    SubscriptionEvent::Failed { code, message } => {
                        st.failure = Some((code.as_str().to_owned(), message));
                        break;
                    }
                    _ => {}
                }
            }
        });
        Self { state, task, size }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[pymethods]
impl Window {
    /// The kept publications, oldest first (a new list each call).
    fn items<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let items: Vec<RustPublication> = self.lock().items.iter().cloned().collect();
        let out = PyList::empty(py);
        let mut names = Names::default();
        for p in &items {
            out.append(Publication::with_names(py, p, &mut names)?)?;
        }
        Ok(out)
    }

    /// The newest publication, or None before the first.
    fn latest(&self, py: Python<'_>) -> PyResult<Option<Publication>> {
        let last = self.lock().items.back().cloned();
        last.map(|p| Publication::new(py, &p)).transpose()
    }

    /// How many publications arrived in all.
    #[getter]
    fn received(&self) -> u64 {
        self.lock().received
    }

    /// How many reconnects lost publications for good (history too short).
    #[getter]
    fn gaps(&self) -> u64 {
        self.lock().gaps
    }

    /// The most publications kept.
    #[getter]
    fn size(&self) -> usize {
        self.size
    }

    /// `(code, message)` if the gateway refused the subscription, else None.
    #[getter]
    fn failure(&self) -> Option<(String, String)> {
        self.lock().failure.clone()
    }

    fn __len__(&self) -> usize {
        self.lock().items.len()
    }

    /// Stops following the topic.
    fn close(&self) {
        self.task.abort();
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        self.task.abort();
    }
}
