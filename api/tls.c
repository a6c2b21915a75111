/* SPDX-License-Identifier: MIT */
/* tls: GnuTLS credentials behind libmicrohttpd's certificate callback, swapped on reload. */
#include "api/tls.h"

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"

#define TLS_MAX_CHAIN 16

struct creds {
	struct creds *older;       /* replaced sets, freed at tls_close */
	gnutls_pcert_st pcert[TLS_MAX_CHAIN];
	unsigned npcert;
	gnutls_privkey_t key;
};

static pthread_mutex_t tls_mu = PTHREAD_MUTEX_INITIALIZER;
static struct creds *current;

static void creds_free(struct creds *c)
{
	for (unsigned i = 0; i < c->npcert; i++)
		gnutls_pcert_deinit(&c->pcert[i]);
	if (c->key != NULL)
		gnutls_privkey_deinit(c->key);
	free(c);
}

/* The key must sign for the certificate's public key, or every handshake would fail. */
static int key_matches(struct creds *c)
{
	unsigned char probe[] = "winnow key check";
	gnutls_datum_t data = {probe, sizeof probe - 1}, sig = {0};
	gnutls_sign_algorithm_t algo;
	int pk = gnutls_privkey_get_pk_algorithm(c->key, NULL), rc;

	algo = gnutls_pk_to_sign(pk, GNUTLS_DIG_SHA256);
	if (algo == GNUTLS_SIGN_UNKNOWN)
		return 1; /* an algorithm we cannot probe: let the handshake tell */
	rc = gnutls_privkey_sign_data2(c->key, algo, 0, &data, &sig);
	if (rc < 0)
		return 0;
	rc = gnutls_pubkey_verify_data2(c->pcert[0].pubkey, algo, 0, &data, &sig);
	gnutls_free(sig.data);
	return rc >= 0;
}

int tls_load(const char *cert, const char *key, struct err *e)
{
	gnutls_datum_t cd = {0}, kd = {0};
	struct creds *c = calloc(1, sizeof *c);
	unsigned n = TLS_MAX_CHAIN;
	int rc;

	if (c == NULL)
		return err_set(e, ERR_NOMEM, "out_of_memory", "out of memory");
	if ((rc = gnutls_load_file(cert, &cd)) < 0) {
		err_set(e, ERR_INVALID, "tls_config", "cannot read TLS certificate %s: %s", cert,
		        gnutls_strerror(rc));
		goto fail;
	}
	rc = gnutls_pcert_list_import_x509_raw(c->pcert, &n, &cd, GNUTLS_X509_FMT_PEM, 0);
	if (rc < 0 || n == 0) {
		err_set(e, ERR_INVALID, "tls_config", "TLS certificate %s: %s", cert,
		        rc < 0 ? gnutls_strerror(rc) : "no certificate in the file");
		goto fail;
	}
	c->npcert = n;
	if ((rc = gnutls_load_file(key, &kd)) < 0) {
		err_set(e, ERR_INVALID, "tls_config", "cannot read TLS key %s: %s", key,
		        gnutls_strerror(rc));
		goto fail;
	}
	if ((rc = gnutls_privkey_init(&c->key)) < 0 ||
	    (rc = gnutls_privkey_import_x509_raw(c->key, &kd, GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
		err_set(e, ERR_INVALID, "tls_config", "TLS key %s: %s", key, gnutls_strerror(rc));
		goto fail;
	}
	if (!key_matches(c)) {
		err_set(e, ERR_INVALID, "tls_config", "TLS key %s does not belong to certificate %s",
		        key, cert);
		goto fail;
	}
	gnutls_free(cd.data);
	gnutls_free(kd.data);
	pthread_mutex_lock(&tls_mu);
	c->older = current;
	current = c;
	pthread_mutex_unlock(&tls_mu);
	return 0;
fail:
	gnutls_free(cd.data);
	if (kd.data != NULL) {
		memset(kd.data, 0, kd.size); /* the private key */
		gnutls_free(kd.data);
	}
	creds_free(c);
	return e != NULL ? e->code : ERR_INVALID;
}

int tls_retrieve(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
                 const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                 gnutls_pcert_st **pcert, unsigned int *pcert_length, gnutls_privkey_t *privkey)
{
	(void)session;
	(void)req_ca_dn;
	(void)nreqs;
	(void)pk_algos;
	(void)pk_algos_length;
	pthread_mutex_lock(&tls_mu);
	if (current == NULL) {
		pthread_mutex_unlock(&tls_mu);
		return -1;
	}
	*pcert = current->pcert;
	*pcert_length = current->npcert;
	*privkey = current->key;
	pthread_mutex_unlock(&tls_mu);
	return 0;
}

void tls_close(void)
{
	struct creds *c;

	pthread_mutex_lock(&tls_mu);
	c = current;
	current = NULL;
	pthread_mutex_unlock(&tls_mu);
	while (c != NULL) {
		struct creds *older = c->older;

		creds_free(c);
		c = older;
	}
}
