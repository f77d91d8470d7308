/* ferry_native hashing (hash.c). */
#ifndef FERRY_HASH_H
#define FERRY_HASH_H
#include <node_api.h>

/* hashBlocks(fd, offset, length, blockSize) -> Promise<Buffer> of 16-byte block hashes */
napi_value ferry_js_hash_blocks(napi_env env, napi_callback_info info);
/* hash128(u8) -> Buffer(16) */
napi_value ferry_js_hash128(napi_env env, napi_callback_info info);
napi_value ferry_js_hash_each(napi_env env, napi_callback_info info);

#endif
