// Node-API addon for the Nitro Secure Module device (/dev/nsm). Node has no ioctl(2), so this
// is the smallest bridge: open the device, exchange one CBOR request for one CBOR response, close.
// All CBOR encoding and decoding happens in TypeScript (enclave-client/src/collectors/nitro.ts).
//
// ABI (Linux drivers/misc/nsm.c, aws-nitro-enclaves-nsm-api nsm-driver):
//   struct nsm_message { struct iovec request; struct iovec response; };
//   NSM_IO_REQUEST = _IOWR(0x0A, 0, struct nsm_message)
// The driver copies request.iov_len bytes in (at most NSM_REQUEST_MAX_SIZE), writes the response
// into response.iov_base (capacity NSM_RESPONSE_MAX_SIZE) and sets response.iov_len to its length.
// explicit_bzero (glibc >= 2.25): a memset before free may be removed as a dead store.
#define _DEFAULT_SOURCE
#include <node_api.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

struct nsm_message {
  struct iovec request;
  struct iovec response;
};

#define NSM_IOCTL_MAGIC 0x0A
#define NSM_IO_REQUEST _IOWR(NSM_IOCTL_MAGIC, 0, struct nsm_message)
#define NSM_REQUEST_MAX_SIZE 0x1000
#define NSM_RESPONSE_MAX_SIZE 0x3000

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  char code[32];
  snprintf(code, sizeof code, "NSM_ERRNO_%d", err);
  napi_throw_error(env, code, msg);
  return NULL;
}

// open(path: string): number  (a file descriptor)
static napi_value nsm_open(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 1) {
    napi_throw_type_error(env, NULL, "open(path) expects one argument");
    return NULL;
  }
  char path[256];
  size_t len = 0;
  if (napi_get_value_string_utf8(env, argv[0], path, sizeof path, &len) != napi_ok || len == 0 || len >= sizeof path - 1) {
    napi_throw_type_error(env, NULL, "open(path): path must be a non-empty string");
    return NULL;
  }
  int fd = open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) return throw_errno(env, "open", errno);
  napi_value out;
  napi_create_int32(env, fd, &out);
  return out;
}

// request(fd: number, request: Uint8Array): Buffer  (the raw CBOR response)
static napi_value nsm_request(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 2) {
    napi_throw_type_error(env, NULL, "request(fd, bytes) expects two arguments");
    return NULL;
  }
  int32_t fd = -1;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, NULL, "request: fd must be a non-negative integer");
    return NULL;
  }
  bool is_typed = false;
  napi_is_typedarray(env, argv[1], &is_typed);
  if (!is_typed) {
    napi_throw_type_error(env, NULL, "request: bytes must be a Uint8Array");
    return NULL;
  }
  napi_typedarray_type type;
  size_t req_len = 0;
  void *req_data = NULL;
  napi_value ab;
  size_t offset = 0;
  if (napi_get_typedarray_info(env, argv[1], &type, &req_len, &req_data, &ab, &offset) != napi_ok || type != napi_uint8_array) {
    napi_throw_type_error(env, NULL, "request: bytes must be a Uint8Array");
    return NULL;
  }
  if (req_len == 0 || req_len > NSM_REQUEST_MAX_SIZE) {
    napi_throw_range_error(env, NULL, "request: size must be 1..4096 bytes (NSM_REQUEST_MAX_SIZE)");
    return NULL;
  }
  uint8_t *resp = calloc(1, NSM_RESPONSE_MAX_SIZE);
  if (resp == NULL) return throw_errno(env, "request", ENOMEM);
  struct nsm_message msg = {
    .request = { .iov_base = req_data, .iov_len = req_len },
    .response = { .iov_base = resp, .iov_len = NSM_RESPONSE_MAX_SIZE },
  };
  int rc;
  do {
    rc = ioctl(fd, NSM_IO_REQUEST, &msg);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) {
    int err = errno;
    explicit_bzero(resp, NSM_RESPONSE_MAX_SIZE);
    free(resp);
    return throw_errno(env, "ioctl(NSM_IO_REQUEST)", err);
  }
  size_t n = msg.response.iov_len;
  if (n > NSM_RESPONSE_MAX_SIZE) n = NSM_RESPONSE_MAX_SIZE;
  napi_value out;
  void *dst = NULL;
  napi_status st = napi_create_buffer_copy(env, n, resp, &dst, &out);
  // the response may carry the attestation of a key: do not leave it in freed memory
  explicit_bzero(resp, NSM_RESPONSE_MAX_SIZE);
  free(resp);
  if (st != napi_ok) {
    napi_throw_error(env, NULL, "request: cannot allocate the response buffer");
    return NULL;
  }
  return out;
}

// close(fd: number): void
static napi_value nsm_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd = -1;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 1 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, NULL, "close(fd) expects a file descriptor");
    return NULL;
  }
  if (close(fd) != 0) return throw_errno(env, "close", errno);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "open", NULL, nsm_open, NULL, NULL, NULL, napi_enumerable, NULL },
    { "request", NULL, nsm_request, NULL, NULL, NULL, napi_enumerable, NULL },
    { "close", NULL, nsm_close, NULL, NULL, NULL, napi_enumerable, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  napi_value max_req, max_resp;
  napi_create_uint32(env, NSM_REQUEST_MAX_SIZE, &max_req);
  napi_create_uint32(env, NSM_RESPONSE_MAX_SIZE, &max_resp);
  napi_set_named_property(env, exports, "REQUEST_MAX_SIZE", max_req);
  napi_set_named_property(env, exports, "RESPONSE_MAX_SIZE", max_resp);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
