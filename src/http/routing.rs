//! The route table the router is assembled from: each [`Route`] matches the method and path
//! template of an operation documented with `#[utoipa::path]`, so what a route serves is what
//! its documentation says, and the table lists every (method, path) the node answers — which is
//! what the OpenAPI test compares with the spec.

use std::{str::FromStr, sync::Arc};

use utoipa::openapi::path::HttpMethod;
use warp::{
    Filter, Rejection, filters::BoxedFilter, http::Method, path::FullPath, reply::Response,
};

/// One operation the node serves.
pub struct Route {
    pub method: Method,
    /// The OpenAPI path template, `/api/keys/{id}`.
    pub path: String,
    pub(super) filter: BoxedFilter<(Response,)>,
}

impl Route {
    /// A route for operation `P` without path parameters; `serve` adds what the handler takes
    /// to the filter that matches `P`'s method and path.
    pub fn new<P: utoipa::Path>(
        serve: impl FnOnce(BoxedFilter<()>) -> BoxedFilter<(Response,)>,
    ) -> Route {
        let (method, path) = operation::<P>();
        let at = matcher::<()>(method.clone(), &path).untuple_one().boxed();
        Route {
            filter: serve(at),
            method,
            path,
        }
    }

    /// A route for operation `P` with one path parameter, parsed as `A` (a value that does not
    /// parse is a path this route does not serve).
    pub fn with<P: utoipa::Path, A: FromStr + Send + Sync + 'static>(
        serve: impl FnOnce(BoxedFilter<(A,)>) -> BoxedFilter<(Response,)>,
    ) -> Route {
        let (method, path) = operation::<P>();
        let at = matcher::<(A,)>(method.clone(), &path).untuple_one().boxed();
        Route {
            filter: serve(at),
            method,
            path,
        }
    }

    /// A route for operation `P` with two path parameters.
    pub fn with2<
        P: utoipa::Path,
        A: FromStr + Send + Sync + 'static,
        B: FromStr + Send + Sync + 'static,
    >(
        serve: impl FnOnce(BoxedFilter<(A, B)>) -> BoxedFilter<(Response,)>,
    ) -> Route {
        let (method, path) = operation::<P>();
        let at = matcher::<(A, B)>(method.clone(), &path)
            .untuple_one()
            .boxed();
        Route {
            filter: serve(at),
            method,
            path,
        }
    }
}

/// The one method and the path of operation `P`. An operation documented with several methods
/// would be several routes; none is, and a route table that had one would not start.
fn operation<P: utoipa::Path>() -> (Method, String) {
    let methods = P::methods();
    let [method] = methods.as_slice() else {
        panic!(
            "{} is documented with {} methods, not one",
            P::path(),
            methods.len()
        );
    };
    let method = match method {
        HttpMethod::Get => Method::GET,
        HttpMethod::Post => Method::POST,
        HttpMethod::Put => Method::PUT,
        HttpMethod::Delete => Method::DELETE,
        HttpMethod::Options => Method::OPTIONS,
        HttpMethod::Head => Method::HEAD,
        HttpMethod::Patch => Method::PATCH,
        HttpMethod::Trace => Method::TRACE,
    };
    (method, P::path())
}

/// Path parameters as the handler takes them.
pub trait Captures: Sized + Send + Sync + 'static {
    const COUNT: usize;
    fn parse(values: &[&str]) -> Option<Self>;
}

impl Captures for () {
    const COUNT: usize = 0;
    fn parse(_: &[&str]) -> Option<Self> {
        Some(())
    }
}

impl<A: FromStr + Send + Sync + 'static> Captures for (A,) {
    const COUNT: usize = 1;
    fn parse(values: &[&str]) -> Option<Self> {
        Some((values.first()?.parse().ok()?,))
    }
}

impl<A: FromStr + Send + Sync + 'static, B: FromStr + Send + Sync + 'static> Captures for (A, B) {
    const COUNT: usize = 2;
    fn parse(values: &[&str]) -> Option<Self> {
        Some((values.first()?.parse().ok()?, values.get(1)?.parse().ok()?))
    }
}

/// A path template's segments: literal text, or `None` for a `{parameter}`.
fn segments(template: &str) -> Vec<Option<String>> {
    template
        .split('/')
        .map(|segment| {
            (!(segment.starts_with('{') && segment.ends_with('}'))).then(|| segment.to_owned())
        })
        .collect()
}

/// The parameters of `path` if it has the template's shape: the same literal segments, and a
/// non-empty segment for every parameter. Segments are compared as sent (not percent-decoded),
/// as warp's own path filters do.
fn capture<'a>(template: &[Option<String>], path: &'a str) -> Option<Vec<&'a str>> {
    let mut values = Vec::new();
    let mut given = path.split('/');
    for expected in template {
        let segment = given.next()?;
        match expected {
            Some(literal) if literal == segment => {}
            Some(_) => return None,
            None if segment.is_empty() => return None,
            None => values.push(segment),
        }
    }
    given.next().is_none().then_some(values)
}

/// Matches `path` (a 404 for the router otherwise), then `method` (a 405), and extracts the
/// parameters.
fn matcher<C: Captures>(method: Method, path: &str) -> BoxedFilter<(C,)> {
    let template = Arc::new(segments(path));
    let parameters = template.iter().filter(|segment| segment.is_none()).count();
    assert_eq!(
        parameters,
        C::COUNT,
        "{path} has {parameters} path parameters, its route takes {}",
        C::COUNT
    );
    warp::path::full()
        .and_then(move |full: FullPath| {
            let template = template.clone();
            async move {
                capture(&template, full.as_str())
                    .and_then(|values| C::parse(&values))
                    .ok_or_else(warp::reject::not_found)
            }
        })
        .and(method_filter(method))
        .boxed()
}

fn method_filter(method: Method) -> BoxedFilter<()> {
    match method {
        Method::GET => warp::get().boxed(),
        Method::POST => warp::post().boxed(),
        Method::PUT => warp::put().boxed(),
        Method::DELETE => warp::delete().boxed(),
        Method::PATCH => warp::patch().boxed(),
        Method::HEAD => warp::head().boxed(),
        Method::OPTIONS => warp::options().boxed(),
        other => warp::method()
            .and_then(move |given: Method| {
                let other = other.clone();
                async move {
                    if given == other {
                        Ok(())
                    } else {
                        Err(warp::reject::not_found())
                    }
                }
            })
            .untuple_one()
            .boxed(),
    }
}

/// Every route of `table` as one filter, tried in order.
pub fn assemble(table: Vec<Route>) -> BoxedFilter<(Response,)> {
    table
        .into_iter()
        .map(|route| route.filter)
        .reduce(|all, next| all.or(next).unify().boxed())
        .unwrap_or_else(|| {
            warp::any()
                .and_then(|| async { Err::<Response, Rejection>(warp::reject::not_found()) })
                .boxed()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_their_template_segment_by_segment() {
        let template = segments("/api/webhooks/{id}/deliveries/{delivery}/replay");
        assert_eq!(
            capture(&template, "/api/webhooks/a/deliveries/b/replay"),
            Some(vec!["a", "b"])
        );
        assert_eq!(
            capture(&template, "/api/webhooks//deliveries/b/replay"),
            None
        );
        assert_eq!(
            capture(&template, "/api/webhooks/a/deliveries/b/replay/"),
            None
        );
        assert_eq!(capture(&template, "/api/webhooks/a/deliveries/b"), None);
        assert_eq!(capture(&segments("/"), "/"), Some(vec![]));
        assert_eq!(capture(&segments("/"), "/x"), None);
    }
}
