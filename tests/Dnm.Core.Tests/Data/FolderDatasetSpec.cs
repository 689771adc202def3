using Dnm.Core.Data;
using SkiaSharp;

namespace Dnm.Core.Tests.Data;

public sealed class FolderDatasetSpec : IDisposable
{
    private const float Tolerance = 2.5f / 255f;
    private readonly ScratchDirectory _dir = new();

    public FolderDatasetSpec()
    {
        // Two classes in ordinal order a, b; b holds a garbage .png that sorts before its good image.
        WriteImage(_dir.File("a", "1.png"), 8, 8, SKEncodedImageFormat.Png, (_, _) => new SKColor(255, 0, 0));
        WriteImage(_dir.File("a", "2.png"), 8, 6, SKEncodedImageFormat.Png, (_, _) => new SKColor(0, 0, 255));
        WriteImage(_dir.File("a", "3.jpg"), 8, 8, SKEncodedImageFormat.Jpeg, (_, _) => new SKColor(0, 255, 0));
        WriteImage(_dir.File("b", "1.png"), 5, 5, SKEncodedImageFormat.Png, (_, _) => new SKColor(100, 100, 100));
        File.WriteAllText(_dir.File("b", "0-bad.png"), "this is not a png");
        File.WriteAllText(_dir.File("b", "notes.txt"), "ignored: not an image extension");
    }

    public void Dispose() => _dir.Dispose();

    private string BadFile => _dir.File("b", "0-bad.png");

    private static void WriteImage(string path, int width, int height, SKEncodedImageFormat format, Func<int, int, SKColor> color)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        using var bitmap = new SKBitmap(width, height);
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                bitmap.SetPixel(x, y, color(x, y));
        using var data = bitmap.Encode(format, 100);
        File.WriteAllBytes(path, data.ToArray());
    }

    private static float[] Image(IImageDataset data, int index)
    {
        var pixels = new float[data.Shape.Pixels];
        data.CopyImage(index, pixels);
        return pixels;
    }

    private static void AllNear(float expected, ReadOnlySpan<float> actual)
    {
        foreach (float v in actual)
            Assert.InRange(v, expected - Tolerance, expected + Tolerance);
    }

    [Fact]
    public void Should_fail_on_a_bad_file_naming_it()
    {
        var e = Assert.Throws<DataException>(() => FolderDataset.Open(_dir.Path));
        Assert.Contains(BadFile, e.Message);
    }

    [Fact]
    public void Should_skip_bad_files_and_resize_to_rgb_planes()
    {
        using var data = FolderDataset.Open(_dir.Path, new FolderOptions { Channels = 3, Height = 4, Width = 4, OnBadFile = BadFilePolicy.Skip });

        Assert.Equal(4, data.Count);
        Assert.Equal(new ImageShape(3, 4, 4), data.Shape);
        Assert.Equal(["a", "b"], data.ClassNames);
        Assert.Equal([0, 0, 0, 1], Enumerable.Range(0, 4).Select(data.Label));
        Assert.Equal(1, data.SkippedCount);
        Assert.Equal([BadFile], data.SkippedFiles);

        var red = Image(data, 0);
        AllNear(1f, red.AsSpan(0, 16));
        AllNear(0f, red.AsSpan(16, 32));
        var blue = Image(data, 1);
        AllNear(0f, blue.AsSpan(0, 32));
        AllNear(1f, blue.AsSpan(32, 16));
        var green = Image(data, 2);
        AllNear(1f, green.AsSpan(16, 16));
        AllNear(100 / 255f, Image(data, 3));
    }

    [Fact]
    public void Should_convert_to_grayscale_by_luma()
    {
        using var data = FolderDataset.Open(_dir.Path, new FolderOptions { Channels = 1, Height = 3, Width = 5, OnBadFile = BadFilePolicy.Skip });
        Assert.Equal(new ImageShape(1, 3, 5), data.Shape);
        AllNear(76 / 255f, Image(data, 0));   // 0.299 · 255
        AllNear(29 / 255f, Image(data, 1));   // 0.114 · 255
        AllNear(150 / 255f, Image(data, 2));  // 0.587 · 255
        AllNear(100 / 255f, Image(data, 3));
    }

    [Fact]
    public void Should_keep_rows_and_columns_in_place_when_resizing()
    {
        using var dir = new ScratchDirectory();
        // Left half black, right half white: after resizing, columns must still go dark to bright.
        WriteImage(dir.File("x.png"), 8, 8, SKEncodedImageFormat.Png, (x, _) => x < 4 ? SKColors.Black : SKColors.White);
        using var data = FolderDataset.Open(dir.Path, new FolderOptions { Height = 4, Width = 4 });

        Assert.Empty(data.ClassNames);
        Assert.Equal(-1, data.Label(0));
        var pixels = Image(data, 0);
        for (int y = 0; y < 4; y++)
        {
            Assert.True(pixels[y * 4] < 0.1f, $"row {y} should start dark");
            Assert.True(pixels[y * 4 + 3] > 0.9f, $"row {y} should end bright");
        }
    }

    [Fact]
    public void Should_take_the_first_images_under_a_limit()
    {
        using var data = FolderDataset.Open(_dir.Path, new FolderOptions { Limit = 2 });
        Assert.Equal(2, data.Count);
        Assert.Equal(0, data.SkippedCount);
    }

    [Fact]
    public void Should_reject_empty_missing_and_mixed_folders()
    {
        using var empty = new ScratchDirectory();
        Directory.CreateDirectory(empty.File("class"));
        Assert.Contains(empty.Path, Assert.Throws<DataException>(() => FolderDataset.Open(empty.Path)).Message);

        string missing = empty.File("nope");
        Assert.Contains(missing, Assert.Throws<DataException>(() => FolderDataset.Open(missing)).Message);

        WriteImage(_dir.File("stray.png"), 2, 2, SKEncodedImageFormat.Png, (_, _) => SKColors.White);
        Assert.Contains("stray.png", Assert.Throws<DataException>(() => FolderDataset.Open(_dir.Path)).Message);

        Assert.Throws<ArgumentOutOfRangeException>(() => FolderDataset.Open(_dir.Path, new FolderOptions { Channels = 2 }));
    }

    [Fact]
    public void Should_report_a_folder_whose_images_all_fail()
    {
        using var dir = new ScratchDirectory();
        Directory.CreateDirectory(dir.File("k"));
        File.WriteAllText(dir.File("k", "x.jpg"), "garbage");
        var e = Assert.Throws<DataException>(() => FolderDataset.Open(dir.Path, new FolderOptions { OnBadFile = BadFilePolicy.Skip }));
        Assert.Contains(dir.File("k", "x.jpg"), e.Message);
    }

    [Fact]
    public void A_folder_larger_than_the_decoded_budget_should_decode_on_read_to_the_same_pixels()
    {
        var options = new FolderOptions { Channels = 3, Height = 4, Width = 4, OnBadFile = BadFilePolicy.Skip };
        using var eager = FolderDataset.Open(_dir.Path, options);
        using var lazy = FolderDataset.Open(_dir.Path, options with { DecodedBudgetBytes = 10 });

        Assert.False(eager.DecodesOnRead);
        Assert.True(lazy.DecodesOnRead);
        Assert.Equal(eager.Count, lazy.Count);
        Assert.Equal(eager.SkippedFiles, lazy.SkippedFiles);
        for (int i = 0; i < eager.Count; i++)
        {
            Assert.Equal(Image(eager, i), Image(lazy, i));
            Assert.Equal((eager.Key(i), eager.Label(i)), (lazy.Key(i), lazy.Label(i)));
        }
        Assert.Equal("a/1.png", eager.Key(0));
    }

    [Fact]
    public void A_folder_with_train_and_test_sub_folders_should_open_them_as_its_splits_with_one_class_order()
    {
        using var root = new ScratchDirectory();
        WriteImage(root.File("train", "cat", "1.png"), 4, 4, SKEncodedImageFormat.Png, (_, _) => SKColors.White);
        WriteImage(root.File("train", "dog", "1.png"), 4, 4, SKEncodedImageFormat.Png, (_, _) => SKColors.Black);
        WriteImage(root.File("test", "dog", "2.png"), 4, 4, SKEncodedImageFormat.Png, (_, _) => SKColors.Black);

        using var train = DatasetCatalog.Open($"folder:{root.Path}", "train", root.Path, folder: new FolderOptions { Height = 4, Width = 4 });
        using var test = DatasetCatalog.Open($"folder:{root.Path}", "test", root.Path, folder: new FolderOptions { Height = 4, Width = 4 });

        Assert.Equal(2, train.Count);
        Assert.Equal(1, test.Count);
        // The test split has no cat folder, yet dog keeps the training split's label.
        Assert.Equal(["cat", "dog"], test.ClassNames);
        Assert.Equal(1, test.Label(0));
        Assert.Equal("dog/2.png", test.Key(0));

        WriteImage(root.File("test", "bird", "3.png"), 4, 4, SKEncodedImageFormat.Png, (_, _) => SKColors.Black);
        var e = Assert.Throws<DataException>(() => DatasetCatalog.Open($"folder:{root.Path}", "test", root.Path, folder: new FolderOptions { Height = 4, Width = 4 }));
        Assert.Contains("bird", e.Message);
    }

    [Fact]
    public void A_plain_folder_should_have_no_test_split()
    {
        Assert.Null(DatasetCatalog.TryOpen($"folder:{_dir.Path}", "test", _dir.Path, folder: new FolderOptions { OnBadFile = BadFilePolicy.Skip }));
    }
}
