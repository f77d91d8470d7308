{
  "targets": [
    {
      "target_name": "ferry_native",
      "sources": ["ferry_native.c"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"],
      "cflags": ["-Wall", "-Wextra"],
      "cflags_c": ["-std=gnu11"],
      "libraries": ["-lxxhash"]
    }
  ]
}
