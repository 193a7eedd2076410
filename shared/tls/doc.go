// Package tls builds centra's TLS configurations and certificates.
//
// One CA signs everything. Each node has one certificate with both the
// serverAuth and clientAuth extended key usages and IP/DNS SANs for the
// addresses peers dial; it serves the API listener (ServerConfig), dials
// other nodes (ClientConfig), and is handed by path to dragonboat's raft
// transport after CheckPeerFiles has vetted it, because dragonboat's own
// errors for bad files are poor. The CLI uses a client certificate
// (client.crt) that only has the clientAuth usage.
//
// Certificates are re-read when their files change (Reloader), so API
// certificates rotate without a restart. dragonboat reads its server
// certificate once at start, so rotating the raft certificate needs a
// restart.
//
// Generate writes the files for `centra certs init`.
package tls
