//! An empty Spin HTTP component: every request gets a 200 with an empty body
//! (`content-length: 0`, as edgeq frames its answers) and no store is touched.
//! The baseline that benches/component.sh divides the edgeq component's req/s by.

use spin_sdk::http::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};
use spin_sdk::http_component;

#[http_component]
async fn handle(_req: IncomingRequest, out: ResponseOutparam) {
    let headers = Fields::from_list(&[("content-length".to_owned(), b"0".to_vec())])
        .expect("valid header");
    let response = OutgoingResponse::new(headers);
    response.set_status_code(200).expect("valid status");
    let body = response.body().expect("the response body");
    out.set(response);
    OutgoingBody::finish(body, None).expect("finish the empty body");
}
