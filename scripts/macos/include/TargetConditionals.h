/* The few macros of the macOS SDK's TargetConditionals.h that ring's C code asks, for an x86_64
 * macOS target: enough for `cargo check --target x86_64-apple-darwin` on a Linux machine
 * without the SDK (.ci/run), where ring's build script compiles its C code but nothing is
 * linked. A real macOS build uses the SDK's own header. */
#ifndef INFLIGHT_STUB_TARGET_CONDITIONALS_H
#define INFLIGHT_STUB_TARGET_CONDITIONALS_H
#define TARGET_OS_MAC 1
#define TARGET_OS_OSX 1
#define TARGET_OS_IPHONE 0
#define TARGET_OS_IOS 0
#define TARGET_OS_TV 0
#define TARGET_OS_WATCH 0
#define TARGET_OS_VISION 0
#define TARGET_OS_SIMULATOR 0
#define TARGET_OS_EMBEDDED 0
#define TARGET_CPU_X86_64 1
#define TARGET_CPU_ARM64 0
#endif
