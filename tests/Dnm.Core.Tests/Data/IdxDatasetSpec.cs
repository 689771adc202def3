using Dnm.Core.Data;

namespace Dnm.Core.Tests.Data;

public sealed class IdxDatasetSpec : IDisposable
{
    private readonly ScratchDirectory _dir = new();

    // Pixel i of the whole file is i mod 251, so every image has distinct, predictable content.
    private static byte Pixel(int i) => (byte)(i % 251);

    private string ImagesFile(int count = 5, string name = "images-idx3-ubyte") =>
        Idx.Write(_dir.File(name), Idx.Images(count, 3, 4, Pixel));

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Should_round_trip_pixels_scaled_to_unit_range_and_labels()
    {
        string labels = Idx.Write(_dir.File("labels"), Idx.Labels(0, 2, 1, 2, 0));
        using var data = IdxDataset.Open(ImagesFile(), labels);

        Assert.Equal(5, data.Count);
        Assert.Equal(new ImageShape(1, 3, 4), data.Shape);
        Assert.Equal(["0", "1", "2"], data.ClassNames);
        Assert.True(((IImageDataset)data).HasLabels);
        Assert.Equal([0, 2, 1, 2, 0], Enumerable.Range(0, 5).Select(data.Label));
        var image = new float[12];
        data.CopyImage(3, image);
        Assert.Equal(Enumerable.Range(36, 12).Select(i => Pixel(i) / 255f), image);
    }

    [Fact]
    public void Should_keep_the_first_samples_under_a_limit_but_derive_classes_from_all_labels()
    {
        string labels = Idx.Write(_dir.File("labels"), Idx.Labels(1, 0, 0, 0, 7));
        using var data = IdxDataset.Open(ImagesFile(), labels, new IdxOptions { Limit = 2, MinClasses = 3 });

        Assert.Equal(2, data.Count);
        Assert.Equal(8, data.ClassNames.Count);
        Assert.Equal(0, data.Label(1));
        Assert.Throws<ArgumentOutOfRangeException>(() => data.Label(2));
        var image = new float[12];
        data.CopyImage(1, image);
        Assert.Equal(Pixel(12) / 255f, image[0]);
    }

    [Fact]
    public void Should_use_min_classes_when_labels_are_few()
    {
        string labels = Idx.Write(_dir.File("labels"), Idx.Labels(0, 1, 0, 1, 0));
        using var data = IdxDataset.Open(ImagesFile(), labels, new IdxOptions { MinClasses = 10 });
        Assert.Equal(10, data.ClassNames.Count);
        Assert.Equal("9", data.ClassNames[9]);
    }

    [Fact]
    public void Should_open_unlabelled_images()
    {
        using var data = IdxDataset.Open(ImagesFile());
        Assert.Empty(data.ClassNames);
        Assert.False(((IImageDataset)data).HasLabels);
        Assert.Equal(-1, data.Label(4));
    }

    [Fact]
    public void Should_read_gzip_files_transparently()
    {
        string images = Idx.Write(_dir.File("images.gz"), Idx.Gzip(Idx.Images(5, 3, 4, Pixel)));
        string labels = Idx.Write(_dir.File("labels.gz"), Idx.Gzip(Idx.Labels(0, 1, 2, 3, 4)));
        using var data = IdxDataset.Open(images, labels, new IdxOptions { Limit = 4 });
        Assert.Equal(4, data.Count);
        Assert.Equal(3, data.Label(3));
        var image = new float[12];
        data.CopyImage(2, image);
        Assert.Equal(Pixel(24 + 11) / 255f, image[11]);
    }

    [Fact]
    public void Should_reject_a_wrong_magic_number_naming_the_file()
    {
        var bytes = Idx.Images(5, 3, 4, Pixel);
        bytes[3] = 0x04;
        string path = Idx.Write(_dir.File("bad-magic"), bytes);
        var e = Assert.Throws<DataException>(() => IdxDataset.Open(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("0x00000804", e.Message);
        Assert.Contains("expected 0x00000803", e.Message);
    }

    [Fact]
    public void Should_reject_swapped_images_and_labels_with_a_hint()
    {
        string labels = Idx.Write(_dir.File("labels"), Idx.Labels(0, 1, 0, 1, 0));
        var e = Assert.Throws<DataException>(() => IdxDataset.Open(labels, ImagesFile()));
        Assert.Contains(labels, e.Message);
        Assert.Contains("swapped", e.Message);
    }

    [Fact]
    public void Should_reject_a_truncated_file_with_sizes_and_the_fix()
    {
        var bytes = Idx.Images(5, 3, 4, Pixel);
        string path = Idx.Write(_dir.File("truncated"), bytes[..40]);
        var e = Assert.Throws<DataException>(() => IdxDataset.Open(path, null, new IdxOptions { FixHint = "Delete it and run `dnm data fetch mnist`." }));
        Assert.Equal(
            $"{path} is truncated: header says 5 images of 3x4 (76 bytes) but the file has 40 bytes. Delete it and run `dnm data fetch mnist`.",
            e.Message);
    }

    [Fact]
    public void Should_reject_a_truncated_gzip_file()
    {
        string path = Idx.Write(_dir.File("truncated.gz"), Idx.Gzip(Idx.Images(5, 3, 4, Pixel)[..50]));
        var e = Assert.Throws<DataException>(() => IdxDataset.Open(path, null, new IdxOptions { Limit = 1 }));
        Assert.Contains(path, e.Message);
        Assert.Contains("truncated", e.Message);
    }

    [Fact]
    public void Should_reject_a_small_gzip_file_that_claims_gigabytes_without_allocating_them()
    {
        // 32 767 images of 256x256 in the header (2.1 GB), nothing behind it, compressed to a few dozen bytes.
        string path = Idx.Write(_dir.File("bomb.gz"), Idx.Gzip(Idx.Build(0x803, [32_767, 256, 256], [])));
        var before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<DataException>(() => IdxDataset.Open(path));
        Assert.Contains("truncated: header says 32767 images of 256x256", e.Message);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 16 << 20, "the reader allocated what the header claimed");
    }

    [Fact]
    public void Should_reject_trailing_bytes()
    {
        string path = Idx.Write(_dir.File("long"), [.. Idx.Images(5, 3, 4, Pixel), 0, 0]);
        var e = Assert.Throws<DataException>(() => IdxDataset.Open(path));
        Assert.Contains($"{path} is too long", e.Message);
    }

    [Fact]
    public void Should_reject_zero_dimensions()
    {
        string path = Idx.Write(_dir.File("zero"), Idx.Build(0x803, [5, 0, 4], []));
        var e = Assert.Throws<DataException>(() => IdxDataset.Open(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("implausible", e.Message);
    }

    [Fact]
    public void Should_reject_a_label_count_that_differs_from_the_image_count()
    {
        string labels = Idx.Write(_dir.File("labels"), Idx.Labels(0, 1, 0, 1));
        string images = ImagesFile();
        var e = Assert.Throws<DataException>(() => IdxDataset.Open(images, labels, new IdxOptions { Limit = 2 }));
        Assert.Contains($"{labels} has 4 labels but {images} has 5 images", e.Message);
    }

    [Fact]
    public void Should_reject_labels_beyond_the_given_class_names()
    {
        string labels = Idx.Write(_dir.File("labels"), Idx.Labels(0, 1, 0, 3, 0));
        var e = Assert.Throws<DataException>(() => IdxDataset.Open(ImagesFile(), labels, new IdxOptions { ClassNames = ["a", "b"] }));
        Assert.Contains("label 3", e.Message);
    }

    [Fact]
    public void Should_name_a_missing_file()
    {
        string path = _dir.File("absent");
        var e = Assert.Throws<DataException>(() => IdxDataset.Open(path));
        Assert.Contains(path, e.Message);
    }
}
