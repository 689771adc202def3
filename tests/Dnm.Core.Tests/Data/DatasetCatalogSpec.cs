using Dnm.Core.Data;
using SkiaSharp;

namespace Dnm.Core.Tests.Data;

public sealed class DatasetCatalogSpec : IDisposable
{
    private readonly ScratchDirectory _dir = new();

    // A store that cannot fetch: these tests must never reach the network.
    private static readonly MnistStore Offline = new(new MnistStoreOptions { Mirrors = [], UseNpm = false });

    public void Dispose() => _dir.Dispose();

    [Theory]
    [InlineData("mnits")]
    [InlineData("idx:")]
    [InlineData("idx:a,b,c")]
    [InlineData("folder:")]
    public void Should_reject_unknown_specs_as_config_errors(string spec)
    {
        var e = Assert.Throws<DatasetSpecException>(() => DatasetCatalog.Open(spec, "train", _dir.Path, store: Offline));
        Assert.IsAssignableFrom<ArgumentException>(e);
    }

    [Fact]
    public void Should_reject_an_unknown_split_before_fetching()
    {
        Assert.Throws<DatasetSpecException>(() => DatasetCatalog.Open("mnist", "validation", _dir.Path, store: Offline));
        Assert.False(Directory.Exists(_dir.File("mnist")));
    }

    [Fact]
    public void Should_report_missing_mnist_as_a_data_error()
    {
        var e = Assert.Throws<DataException>(() => DatasetCatalog.Open("mnist", "test", _dir.Path, store: Offline));
        Assert.Contains("train-images-idx3-ubyte", e.Message);
    }

    [Fact]
    public void Should_open_idx_files_with_and_without_labels()
    {
        string images = Idx.Write(_dir.File("im"), Idx.Images(4, 2, 3, p => (byte)p));
        string labels = Idx.Write(_dir.File("lb"), Idx.Labels(3, 2, 1, 0));

        using var labelled = DatasetCatalog.Open($"idx:{images},{labels}", "train", _dir.Path, limit: 3);
        Assert.Equal(3, labelled.Count);
        Assert.Equal(new ImageShape(1, 2, 3), labelled.Shape);
        Assert.Equal(1, labelled.Label(2));
        Assert.Equal($"idx:{images}", labelled.Name);

        Assert.Null(DatasetCatalog.TryOpen($"idx:{images}", "test", _dir.Path));
        using var bare = DatasetCatalog.Open($"idx:{images}", "train", _dir.Path);
        Assert.Equal(4, bare.Count);
        Assert.False(bare.HasLabels);
    }

    [Fact]
    public void Should_open_fashion_mnist_files_already_in_the_data_dir()
    {
        Directory.CreateDirectory(_dir.File("fashion-mnist"));
        Idx.Write(_dir.File("fashion-mnist", "t10k-images-idx3-ubyte.gz"), Idx.Gzip(Idx.Images(2, 28, 28, p => (byte)p)));
        Idx.Write(_dir.File("fashion-mnist", "t10k-labels-idx1-ubyte"), Idx.Labels(9, 0));
        using var data = DatasetCatalog.Open("fashion-mnist", "test", _dir.Path);
        Assert.Equal("fashion-mnist/test", data.Name);
        Assert.Equal(10, data.ClassNames.Count);
        Assert.Equal("Ankle boot", data.ClassNames[data.Label(0)]);
    }

    [Fact]
    public void Should_open_a_folder_with_the_given_shape_and_limit()
    {
        foreach (var (cls, file) in new[] { ("x", "1.png"), ("x", "2.png"), ("y", "1.png") })
        {
            Directory.CreateDirectory(_dir.File("f", cls));
            using var bitmap = new SKBitmap(6, 6);
            bitmap.Erase(SKColors.White);
            using var png = bitmap.Encode(SKEncodedImageFormat.Png, 100);
            File.WriteAllBytes(_dir.File("f", cls, file), png.ToArray());
        }

        using var data = DatasetCatalog.Open($"folder:{_dir.File("f")}", "train", _dir.Path, limit: 2,
            folder: new FolderOptions { Channels = 3, Height = 2, Width = 2 });
        Assert.Equal(2, data.Count);
        Assert.Equal(new ImageShape(3, 2, 2), data.Shape);
        Assert.Equal(["x", "y"], data.ClassNames);
    }

    [Fact]
    public void Default_data_dir_should_follow_DNM_DATA()
    {
        // The only test that touches DNM_DATA; it restores the variable whatever happens.
        string? before = Environment.GetEnvironmentVariable(DatasetCatalog.DataDirVariable);
        try
        {
            Environment.SetEnvironmentVariable(DatasetCatalog.DataDirVariable, _dir.Path);
            Assert.Equal(_dir.Path, DatasetCatalog.DefaultDataDir());
            Environment.SetEnvironmentVariable(DatasetCatalog.DataDirVariable, null);
            Assert.EndsWith(Path.Combine(".cache", "dnm"), DatasetCatalog.DefaultDataDir());
        }
        finally
        {
            Environment.SetEnvironmentVariable(DatasetCatalog.DataDirVariable, before);
        }
    }
}
