//! `RateLimit-*` headers on the answers to rate-limited requests that were let through. The
//! check happens deep in the caller filter ([`super::filters::caller`]), long before the
//! answer exists; it records its outcome in a slot that lives as long as the request, and this
//! service wrapper copies it onto the answer. (Refused requests carry the headers in their
//! error, [`super::ApiError::RateLimited`].)

use std::{
    cell::Cell,
    convert::Infallible,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use warp::http::{Request, Response};

use crate::auth::request_limit::RateStatus;

tokio::task_local! {
    static OUTCOME: Cell<Option<RateStatus>>;
}

/// Records the rate check of the request being answered (a no-op outside [`WithRateHeaders`]).
pub fn record(status: RateStatus) {
    let _ = OUTCOME.try_with(|slot| slot.set(Some(status)));
}

/// `service`, with each answer carrying the headers of its request's rate check, if any.
#[derive(Clone)]
pub struct WithRateHeaders<S>(pub S);

impl<S, In, Out> tower_service::Service<Request<In>> for WithRateHeaders<S>
where
    S: tower_service::Service<Request<In>, Response = Response<Out>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<Out>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Out>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request<In>) -> Self::Future {
        let answer = self.0.call(request);
        Box::pin(OUTCOME.scope(Cell::new(None), async move {
            let mut response = answer.await?;
            if let Some(status) = OUTCOME.with(Cell::get) {
                status.insert_headers(response.headers_mut());
            }
            Ok(response)
        }))
    }
}
