/* ProcessPrng for Wine releases that lack bcryptprimitives.dll (before 9.0): the Rust
 * standard library's Windows random source since Rust 1.78. It forwards to RtlGenRandom
 * (advapi32's SystemFunction036), the source the standard library used before. Used only to
 * run the Windows test binaries under Wine (scripts/wine/run); a real Windows has the DLL. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
