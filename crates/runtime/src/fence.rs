//! Fencing of a leader's writes. A leader that stops running for a while (a
//! frozen process, a paused virtual machine) may wake after another replica
//! has taken the Lease over, with its controllers' timers and watch events all
//! due at once; its renewal loop would notice and step down a moment later,
//! but a reconcile could write first. So the leader's client refuses to send a
//! write (any request other than GET, HEAD or OPTIONS) once the leadership is
//! no longer current by this process's own monotonic clock: past the last
//! successful renewal plus the renew deadline, which expires before another
//! replica may take over (the lease duration). The refusal is local: nothing
//! reaches the API server.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Method, Request};

/// When this process may write: always (no leader election), until an
/// instant, or never (the leadership is lost).
#[derive(Clone, Debug)]
pub struct Fence {
    until: Arc<Mutex<Option<Instant>>>,
}

impl Fence {
    /// A fence that lets writes through until `until`.
    pub fn until(until: Instant) -> Self {
        Self {
            until: Arc::new(Mutex::new(Some(until))),
        }
    }

    /// Moves the end of the writes to `until` (a renewal).
    pub fn extend(&self, until: Instant) {
        *self.until.lock().unwrap_or_else(|e| e.into_inner()) = Some(until);
    }

    /// No write from now on.
    pub fn close(&self) {
        *self.until.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Whether a write may go now.
    pub fn allows_writes(&self) -> bool {
        self.until
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|until| Instant::now() < until)
    }
}

/// Whether a request writes.
fn writes(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// A write refused by the [`Fence`].
#[derive(Debug, thiserror::Error)]
#[error(
    "not sent: this process's leadership is no longer current (the Lease was not renewed within the renew deadline), so it writes nothing"
)]
pub struct Fenced;

/// The layer that puts a [`Fence`] in front of a client.
#[derive(Clone, Debug)]
pub struct FenceLayer(pub Fence);

impl<S> tower::Layer<S> for FenceLayer {
    type Service = FenceService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        FenceService {
            inner,
            fence: self.0.clone(),
        }
    }
}

/// A client service whose writes pass only while its [`Fence`] allows them.
#[derive(Clone, Debug)]
pub struct FenceService<S> {
    inner: S,
    fence: Fence,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, B> tower::Service<Request<B>> for FenceService<S>
where
    S: tower::Service<Request<B>>,
    S::Error: Into<BoxError>,
    S::Response: Send + 'static,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if writes(request.method()) && !self.fence.allows_writes() {
            tracing::warn!(method = %request.method(), path = %request.uri().path(), "write not sent: the leadership is not current");
            return Box::pin(std::future::ready(Err(Box::new(Fenced) as BoxError)));
        }
        let call = self.inner.call(request);
        Box::pin(async move { call.await.map_err(Into::into) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tower::{Layer, Service, ServiceExt};

    /// A service that answers every request with its method.
    #[derive(Clone)]
    struct Echo;
    impl Service<Request<()>> for Echo {
        type Response = String;
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<String, Self::Error>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, r: Request<()>) -> Self::Future {
            std::future::ready(Ok(r.method().to_string()))
        }
    }

    async fn send(fence: &Fence, method: Method) -> Result<String, String> {
        let request = Request::builder()
            .method(method)
            .uri("/apis/hosting.imio.be/v1alpha1/namespaces/t/plonesites/s")
            .body(())
            .unwrap_or_default();
        FenceLayer(fence.clone())
            .layer(Echo)
            .oneshot(request)
            .await
            .map_err(|e| e.to_string())
    }

    #[tokio::test]
    async fn writes_pass_while_the_leadership_is_current_and_reads_always() {
        let fence = Fence::until(Instant::now() + Duration::from_secs(60));
        for method in [Method::PATCH, Method::POST, Method::PUT, Method::DELETE] {
            assert_eq!(send(&fence, method.clone()).await, Ok(method.to_string()));
        }
        // Past the deadline (a process frozen beyond it): writes stop, reads go on.
        fence.extend(Instant::now() - Duration::from_millis(1));
        for method in [Method::PATCH, Method::POST, Method::PUT, Method::DELETE] {
            let refused = send(&fence, method).await;
            assert!(
                refused.as_ref().is_err_and(|e| e.contains("not sent")),
                "{refused:?}"
            );
        }
        assert_eq!(send(&fence, Method::GET).await, Ok("GET".into()));
        // A renewal lets them through again; a lost leadership never.
        fence.extend(Instant::now() + Duration::from_secs(60));
        assert_eq!(send(&fence, Method::PATCH).await, Ok("PATCH".into()));
        fence.close();
        assert!(send(&fence, Method::PATCH).await.is_err());
        assert_eq!(send(&fence, Method::GET).await, Ok("GET".into()));
    }
}
