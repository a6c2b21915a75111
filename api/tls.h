/* SPDX-License-Identifier: MIT */
/* tls: the server's certificate and key for HTTPS, replaceable while the server runs.
 *
 * libmicrohttpd 0.9.75 loads MHD_OPTION_HTTPS_MEM_CERT/KEY once, at start, and has no call
 * to swap them; so the server gives libmicrohttpd a GnuTLS certificate callback
 * (MHD_OPTION_HTTPS_CERT_CALLBACK) and this module answers it with the credentials loaded
 * last. tls_reload() loads new files and swaps them in under a lock: handshakes that start
 * after it use the new certificate, connections already open keep theirs. GnuTLS uses the
 * pointers the callback returned until its handshake ends, so replaced credentials are kept
 * (a few KiB per reload) until tls_close(). One set per process: the callback has no
 * context pointer. Thread-safe. */
#ifndef WINNOW_TLS_H
#define WINNOW_TLS_H

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>

struct err;

/* Load the PEM certificate chain cert and the PEM private key key and make them the
 * process's credentials. Returns 0; ERR_INVALID (e names the file and GnuTLS's reason;
 * slug "tls_config") when a file cannot be read or parsed, or the key does not belong to
 * the certificate; ERR_NOMEM. On an error the credentials in use are unchanged. */
int tls_load(const char *cert, const char *key, struct err *e);

/* The certificate callback to give libmicrohttpd (MHD_OPTION_HTTPS_CERT_CALLBACK, a
 * gnutls_certificate_retrieve_function2): the credentials loaded last, borrowed (valid
 * until tls_close()). Returns 0, or -1 (the handshake fails) when none are loaded. */
int tls_retrieve(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
                 const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                 gnutls_pcert_st **pcert, unsigned int *pcert_length, gnutls_privkey_t *privkey);

/* Free every credential loaded. Call after the HTTP server has stopped. */
void tls_close(void);

#endif
