using System.Runtime.InteropServices;

namespace Dnm.Core.Runtime;

/// <summary>
/// Process-level native settings that torch's CPU kernels depend on for speed and correctness.
/// Everything here is applied by the program itself: a user never has to export anything.
/// </summary>
internal static partial class NativeTuning
{
    private const int M_TRIM_THRESHOLD = -1;
    private const int M_MMAP_MAX = -4;

    [LibraryImport("libc", EntryPoint = "mallopt")]
    private static partial int Mallopt(int param, int value);

    /// <summary>
    /// Without oneDNN, libtorch's im2col makes ~200 MB buffers every step. glibc serves those with
    /// mmap and returns them with munmap each time, and the page faults cost ~5x in throughput.
    /// Keeping them on the heap (no mmap, no trimming) is what MALLOC_MMAP_MAX_=0 and
    /// MALLOC_TRIM_THRESHOLD_=1e11 do; mallopt applies the same at start-up.
    /// Returns false where the C library is not glibc (nothing to do there).
    /// </summary>
    public static bool KeepLargeAllocationsOnHeap()
    {
        if (!OperatingSystem.IsLinux()) return false;
        try
        {
            // mallopt takes an int: INT_MAX (~2 GB) is the largest trim threshold it can express.
            return Mallopt(M_MMAP_MAX, 0) == 1 & Mallopt(M_TRIM_THRESHOLD, int.MaxValue) == 1;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
    }

    private delegate IntPtr GlobalContextFn();
    [return: MarshalAs(UnmanagedType.U1)]
    private delegate bool GetBoolFn();
    private delegate void SetBoolFn(IntPtr context, [MarshalAs(UnmanagedType.U1)] bool value);

    /// <summary>
    /// Turns oneDNN (MKLDNN) on or off for this process: at::globalContext().setUserEnabledMkldnn(b).
    /// TorchSharp has no binding for it, so this calls libtorch_cpu's C++ entry points directly.
    /// </summary>
    public static void SetMkldnnEnabled(bool enabled) => SetContextFlag("_ZN2at7Context20setUserEnabledMkldnnEb", enabled);

    /// <summary>
    /// libtorch tries NNPACK for some CPU convolutions and, where the CPU lacks what NNPACK needs,
    /// prints "Could not initialize NNPACK" on every such call. Turning it off there changes no
    /// result (it was never used) and keeps the log readable. Returns whether NNPACK was disabled.
    /// </summary>
    public static bool DisableNnpackWhereUnsupported()
    {
        var available = Marshal.GetDelegateForFunctionPointer<GetBoolFn>(Export("_ZN2at6native17_nnpack_availableEv"));
        if (available()) return false;
        SetContextFlag("_ZN2at7Context20setUserEnabledNNPACKEb", false);
        return true;
    }

    private static void SetContextFlag(string mangledSetter, bool value)
    {
        var globalContext = Marshal.GetDelegateForFunctionPointer<GlobalContextFn>(Export("_ZN2at13globalContextEv"));
        var set = Marshal.GetDelegateForFunctionPointer<SetBoolFn>(Export(mangledSetter));
        set(globalContext(), value);
    }

    private static IntPtr Export(string name)
    {
        // libtorch_cpu is already mapped once TorchSharp has initialised: dlopen by soname finds it.
        var lib = NativeLibrary.Load("libtorch_cpu.so", typeof(TorchSharp.torch).Assembly, DllImportSearchPath.AssemblyDirectory);
        return NativeLibrary.GetExport(lib, name);
    }
}
