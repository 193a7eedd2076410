// Package client is FlareDB's region-aware Go client.
//
// A Client is given the API endpoints of any centra nodes (control-plane
// nodes or stores: both serve the placement driver's read methods). It asks
// PD which region holds a key and which peer leads it, caches the answer,
// and sends each request to a store holding the region, naming the region
// and the epoch it saw (centra.flaredb.v1.Context). Keys are the caller's
// raw keys inside a namespace ("" means "default"); the client encodes them
// only to find their region (flaredb/internal/keys).
//
// # Routing
//
// Writes and compare-and-swap go to the region's leader. Reads go to the
// leader too, unless the client was built WithLocalStore and that store
// holds a replica of the region: then the read is sent there, which serves
// it from its own replica when the namespace is eventual. A store answers a
// read of a strong namespace on a follower with NotLeader; the client then
// remembers that the namespace is strong and sends its reads to the leader
// from then on.
//
// # Retries
//
// A store that cannot serve a request answers with a region error and the
// client retries under the caller's context:
//   - NotLeader: go to the leader it names, or reload the region from PD;
//   - EpochNotMatch: the region split or changed; cache the regions the
//     store returned, split the work again and retry each part;
//   - RegionNotFound, KeyNotInRegion: drop the cached region and reload it;
//   - ServerBusy: wait the time the store asks for;
//   - an unreachable store: forget the leader, reload the region and try
//     another peer.
//
// Waits grow exponentially (20 ms doubling up to 1 s by default). When the
// context ends, the error (an *OpError) names the operation, namespace, key
// or range and the last cause. RPC errors a retry cannot fix
// (InvalidArgument, ResourceExhausted, ...) are returned at once with the
// server's message; connect.CodeOf reports their code. A context without a
// deadline gets a retry budget (WithRetryTimeout, 20 s by default) so that
// a down cluster does not block a caller for ever.
//
// # Guarantees
//
//   - Strong namespaces: every single-key operation (Get, Put, Delete,
//     CompareAndSwap) is linearizable: writes commit through raft and reads
//     are served by the leader after a ReadIndex round.
//   - Eventual namespaces: writes still commit through raft (nothing
//     acknowledged is lost), but a read may be served by a follower and
//     return a stale value; successive reads may even go back in time when
//     they reach different replicas.
//   - BatchPut, BatchGet, DeleteRange and Scan are split per region. The
//     part of a batch inside one region is atomic; a batch spanning regions
//     is not: when it fails, some regions' parts may have been applied.
//     Retrying the whole batch is safe, because puts and deletes are
//     idempotent.
//   - A scan returns each key of its range at most once and in order, also
//     across splits that happen while it runs (it resumes after the last
//     key it returned), but it is not a snapshot: each region is read at its
//     own moment. On a strong namespace each region's part is read by the
//     leader after a ReadIndex round from one pebble iterator, a
//     linearizable snapshot of that part at one moment between the call and
//     the return; a part resumed after a failure is read at a later moment.
//     So every key a scan returns (with its value) and every key of its range
//     it does not return (up to the last key returned, when the limit cut
//     it short) is a linearizable read of that key inside the scan's
//     call-return window: what e2e/faults checks, as TiKV's raw scan
//     promises.
//   - CompareAndSwap is retried only when the store surely did not apply
//     it (a region error, or a connection that never opened). When the
//     outcome is unknown (the connection broke after the request was sent)
//     it fails with ErrIndeterminate instead of guessing.
package client
