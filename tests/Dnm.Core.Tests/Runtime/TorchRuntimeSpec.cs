using Dnm.Core.Config;
using Dnm.Core.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Dnm.Core.Tests.Runtime;

public class TorchRuntimeSpec
{
    [Fact]
    public void Initialize_leaves_conv_kernels_that_agree_with_float64()
    {
        var (device, report) = TorchRuntime.Initialize(DeviceSpec.Parse("cpu"), threads: 0);
        Assert.Equal(DeviceType.CPU, device.type);
        var after = NumericsSelfCheck.Run(device);
        Assert.True(after.Passed, after.Detail);
        Assert.True(report.Threads > 0);
        // Where oneDNN was turned off, the log says why.
        Assert.Equal(!report.MkldnnEnabled, report.Notes.Any(n => n.StartsWith("oneDNN disabled", StringComparison.Ordinal)));
    }

    [Fact]
    public void Cuda_device_without_cuda_is_a_config_error()
    {
        if (cuda.is_available()) return;
        var e = Assert.Throws<ConfigException>(() => TorchRuntime.Resolve(DeviceSpec.Parse("cuda:0")));
        Assert.Contains("--device cpu", e.Message);
    }
}
