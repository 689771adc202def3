using Dnm.Core.Telemetry;

namespace Dnm.Core.Tests.Telemetry;

public sealed class CudaMemoryProbeSpec
{
    [Theory]
    [InlineData(0, null, 0, null)]
    [InlineData(1, "", 1, null)]
    [InlineData(0, "2,3", 2, null)]              // torch's cuda:0 is the first visible GPU
    [InlineData(1, "2, 3", 3, null)]
    [InlineData(0, "GPU-8a1b2c3d-0000", -1, "GPU-8a1b2c3d-0000")]
    public void Torch_device_index_should_map_to_the_gpu_nvml_numbers(int cudaIndex, string? visible, int index, string? uuid)
    {
        Assert.Equal((index, uuid), CudaMemoryProbe.NvmlTarget(cudaIndex, visible));
    }

    [Fact]
    public void Opening_should_never_throw_and_an_open_probe_should_read_a_sane_device()
    {
        // On a host without the NVIDIA driver there is nothing to open: device memory is simply not reported.
        using var probe = CudaMemoryProbe.TryOpen(0, null);
        if (!File.Exists("/proc/driver/nvidia/version")) Assert.Null(probe);
        if (probe?.Read() is { } memory) Assert.InRange(memory.Used, 0, memory.Total);
    }
}
