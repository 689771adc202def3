using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Dnm.Core.Runtime;

/// <summary>
/// The memory of a contiguous float32 CPU tensor as a span, for the step's host buffers. TorchSharp's
/// data&lt;T&gt;() accessor copies element by element into spans and allocates a whole managed array to
/// copy out of one; a step moves ~1M floats each way, every step.
/// </summary>
internal static unsafe class HostTensor
{
    private static readonly delegate* unmanaged<IntPtr, IntPtr> DataPointer = Resolve();

    /// <summary>The tensor's elements; valid while the tensor lives.</summary>
    public static Span<float> Floats(Tensor t)
    {
        if (t.device_type != DeviceType.CPU || t.dtype != ScalarType.Float32 || !t.is_contiguous())
            throw new ArgumentException($"need a contiguous float32 CPU tensor, got {t.dtype} on {t.device} (contiguous: {t.is_contiguous()})", nameof(t));
        var n = checked((int)t.numel());
        return n == 0 ? Span<float>.Empty : new Span<float>((void*)DataPointer(t.Handle), n);
    }

    private static delegate* unmanaged<IntPtr, IntPtr> Resolve()
    {
        // TorchSharp has loaded its native shim by now (any tensor exists); loading it again by name finds that copy.
        var lib = NativeLibrary.Load("libLibTorchSharp.so", typeof(torch).Assembly, DllImportSearchPath.AssemblyDirectory);
        return (delegate* unmanaged<IntPtr, IntPtr>)NativeLibrary.GetExport(lib, "THSTensor_data");
    }
}
