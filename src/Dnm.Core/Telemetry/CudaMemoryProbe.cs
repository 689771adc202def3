using System.Runtime.InteropServices;

namespace Dnm.Core.Telemetry;

/// <summary>
/// Reads a CUDA device's memory through NVML (libnvidia-ml, installed with every NVIDIA driver).
/// TorchSharp exposes no CUDA memory statistics, and NVML needs neither a CUDA context nor the
/// training thread, so the metrics exporter can call it while a step runs. It reports the whole
/// device (every process on it), which is what decides whether the next allocation fits.
/// </summary>
public sealed unsafe class CudaMemoryProbe : IDisposable
{
    private const int Success = 0;
    private readonly nint library;
    private readonly nint device;
    private readonly delegate* unmanaged<nint, Memory*, int> getMemoryInfo;
    private readonly delegate* unmanaged<int> shutdown;
    private int disposed;

    [StructLayout(LayoutKind.Sequential)]
    private struct Memory
    {
        public ulong Total;
        public ulong Free;
        public ulong Used;
    }

    private CudaMemoryProbe(nint library, nint device, delegate* unmanaged<nint, Memory*, int> getMemoryInfo, delegate* unmanaged<int> shutdown)
    {
        this.library = library;
        this.device = device;
        this.getMemoryInfo = getMemoryInfo;
        this.shutdown = shutdown;
    }

    /// <summary>
    /// A probe for torch's cuda:<paramref name="cudaIndex"/>, or null where there is no NVML or no such
    /// device (a CPU-only host, a container without the driver's libraries): device memory is then
    /// simply not reported.
    /// </summary>
    public static CudaMemoryProbe? TryOpen(int cudaIndex, string? cudaVisibleDevices)
    {
        if (!NativeLibrary.TryLoad("libnvidia-ml.so.1", out var lib)) return null;
        try
        {
            if (!NativeLibrary.TryGetExport(lib, "nvmlInit_v2", out var init)
                || !NativeLibrary.TryGetExport(lib, "nvmlShutdown", out var shut)
                || !NativeLibrary.TryGetExport(lib, "nvmlDeviceGetHandleByIndex_v2", out var byIndex)
                || !NativeLibrary.TryGetExport(lib, "nvmlDeviceGetHandleByUUID", out var byUuid)
                || !NativeLibrary.TryGetExport(lib, "nvmlDeviceGetMemoryInfo", out var memory)
                || ((delegate* unmanaged<int>)init)() != Success)
            {
                NativeLibrary.Free(lib);
                return null;
            }
            nint handle;
            var target = NvmlTarget(cudaIndex, cudaVisibleDevices);
            int status;
            if (target.Uuid is { } uuid)
            {
                var bytes = System.Text.Encoding.ASCII.GetBytes(uuid + "\0");
                fixed (byte* p = bytes) status = ((delegate* unmanaged<byte*, nint*, int>)byUuid)(p, &handle);
            }
            else status = ((delegate* unmanaged<uint, nint*, int>)byIndex)((uint)target.Index, &handle);
            if (status != Success)
            {
                ((delegate* unmanaged<int>)shut)();
                NativeLibrary.Free(lib);
                return null;
            }
            return new CudaMemoryProbe(lib, handle, (delegate* unmanaged<nint, Memory*, int>)memory, (delegate* unmanaged<int>)shut);
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
        {
            NativeLibrary.Free(lib);
            return null;
        }
    }

    /// <summary>
    /// NVML numbers all GPUs of the host (in PCI order); CUDA numbers only those in CUDA_VISIBLE_DEVICES,
    /// in the order listed there. Entries are indices or UUIDs ("GPU-..."); torch's cuda:N is the Nth entry.
    /// Without the variable both number every GPU in PCI order (assuming CUDA_DEVICE_ORDER=PCI_BUS_ID or
    /// identical GPUs, as on a training node).
    /// </summary>
    public static (int Index, string? Uuid) NvmlTarget(int cudaIndex, string? cudaVisibleDevices)
    {
        if (string.IsNullOrWhiteSpace(cudaVisibleDevices)) return (cudaIndex, null);
        var entries = cudaVisibleDevices.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (cudaIndex < 0 || cudaIndex >= entries.Length) return (cudaIndex, null);
        var entry = entries[cudaIndex];
        return int.TryParse(entry, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var physical)
            ? (physical, null)
            : (-1, entry);
    }

    /// <summary>Used and total bytes now; null if the driver stopped answering (a GPU that fell off the bus).</summary>
    public DeviceMemory? Read()
    {
        if (Volatile.Read(ref disposed) != 0) return null;
        Memory m;
        return getMemoryInfo(device, &m) == Success ? new DeviceMemory((long)m.Used, (long)m.Total) : null;
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref disposed, 1) != 0) return;
        shutdown();
        NativeLibrary.Free(library);
    }
}
