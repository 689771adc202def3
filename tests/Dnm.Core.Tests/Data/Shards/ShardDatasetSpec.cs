using System.Formats.Tar;
using System.Text;
using Dnm.Core.Data;
using Dnm.Core.Data.Shards;

namespace Dnm.Core.Tests.Data.Shards;

public sealed class ShardDatasetSpec : IDisposable
{
    private static readonly ImageShape Gray = new(1, 6, 5);
    private readonly ScratchDirectory dir = new();

    public void Dispose() => dir.Dispose();

    private ShardManifest Pack(IImageDataset data, IImageDataset? test = null, long shardBytes = 8 * 1024, double? fraction = null, string? output = null) =>
        ShardPacker.Pack(data, test, new PackOptions { Out = output ?? dir.Path, ShardBytes = shardBytes, Source = "bytes", TestFraction = fraction }, null, CancellationToken.None);

    private static ShardDataset Open(string spec, string split = "train", BadFilePolicy onBad = BadFilePolicy.Fail) =>
        ShardDataset.Open(ShardSpec.Resolve(spec, split)!, new ShardOptions { FallbackShape = Gray, OnBadImage = onBad });

    [Fact]
    public void Packed_shards_should_read_back_every_sample_bit_for_bit_with_labels_keys_and_classes()
    {
        var source = new ByteDataset(40, Gray);
        var manifest = Pack(source, shardBytes: 8 * 1024);

        using var shards = Open(dir.Path);
        Assert.True(manifest.Splits["train"].Count > 2, "small shards: the set spans several files");
        Assert.Equal(40, manifest.Splits["train"].Sum(f => f.Samples));
        Assert.Equal((40, Gray), (shards.Count, shards.Shape));
        Assert.Equal(source.ClassNames, shards.ClassNames);
        for (int i = 0; i < source.Count; i++)
        {
            Assert.Equal(source.Label(i), shards.Label(i));
            // The extension is dropped and the key keeps its folder.
            Assert.Equal($"k/{i:D4}", shards.Key(i));
            var read = new float[Gray.Pixels];
            shards.CopyImage(i, read);
            Assert.Equal(source.Image(i), read);
        }
        Assert.True(File.Exists(dir.File("train-000000.tar" + ShardIndex.Suffix)));
        Assert.False(File.Exists(dir.File(ShardPacker.ProgressFile)));
        Assert.DoesNotContain(dir.FileNames(), f => f.EndsWith(".tmp", StringComparison.Ordinal));
    }

    [Fact]
    public void Packing_the_same_data_twice_should_write_the_same_bytes()
    {
        var first = Pack(new ByteDataset(12, Gray), output: dir.File("a"));
        var second = Pack(new ByteDataset(12, Gray), output: dir.File("b"));
        Assert.Equal(first.Splits["train"].Select(f => f.Sha256), second.Splits["train"].Select(f => f.Sha256));
    }

    [Fact]
    public void A_test_fraction_should_split_by_key_hash_into_train_and_test_shards_that_partition_the_source()
    {
        var source = new ByteDataset(200, Gray);
        Pack(source, fraction: 0.25);

        using var train = Open(dir.Path, "train");
        using var test = Open(dir.Path, "test");
        Assert.Equal(200, train.Count + test.Count);
        Assert.InRange(test.Count, 30, 70);
        var keys = Enumerable.Range(0, train.Count).Select(train.Key).Concat(Enumerable.Range(0, test.Count).Select(test.Key)).ToHashSet();
        Assert.Equal(200, keys.Count);
        // The side of a key depends on the key alone.
        Assert.All(Enumerable.Range(0, test.Count), i => Assert.True(DatasetView.IsHeldOut(test.Key(i), 0.25)));
    }

    [Fact]
    public void A_pattern_should_name_shards_and_the_manifest_beside_them_should_give_the_test_split()
    {
        Pack(new ByteDataset(40, Gray), new ByteDataset(10, Gray, seed: 2), shardBytes: 8 * 1024);
        int trainShards = Directory.GetFiles(dir.Path, "train-*.tar").Length;

        using var all = Open(dir.File($"train-{{000000..{trainShards - 1:D6}}}.tar"));
        using var two = Open(dir.File("train-{000000..000001}.tar"));
        using var test = Open(dir.File("train-{000000..000001}.tar"), "test");
        Assert.Equal(40, all.Count);
        Assert.True(two.Count < 40);
        Assert.Equal(10, test.Count);
    }

    [Fact]
    public void Brace_patterns_should_expand_ranges_with_padding_and_lists()
    {
        Assert.Equal(["a-008.tar", "a-009.tar", "a-010.tar"], ShardSpec.Expand("a-{008..010}.tar"));
        Assert.Equal(["x/a-0", "x/a-1", "y/a-0", "y/a-1"], ShardSpec.Expand("{x,y}/a-{0..1}"));
        Assert.Equal(["plain.tar"], ShardSpec.Expand("plain.tar"));
        Assert.Throws<DatasetSpecException>(() => ShardSpec.Expand("a-{9..1}.tar"));
        Assert.Throws<DatasetSpecException>(() => ShardSpec.Expand("a-{0..99999999}.tar"));
        Assert.Throws<DatasetSpecException>(() => ShardSpec.Expand("a-{000.tar"));
    }

    [Fact]
    public void A_shard_whose_sha256_differs_from_the_manifest_should_be_refused_naming_it()
    {
        Pack(new ByteDataset(20, Gray));
        var shard = dir.File("train-000000.tar");
        var bytes = File.ReadAllBytes(shard);
        bytes[600] ^= 0xFF;
        File.WriteAllBytes(shard, bytes);

        var e = Assert.Throws<DataException>(() => Open(dir.Path));
        Assert.Contains("train-000000.tar", e.Message);
        Assert.Contains("SHA-256", e.Message);
    }

    [Fact]
    public void A_corrupt_tar_header_should_be_an_error_naming_the_shard()
    {
        var tar = dir.File("train-000000.tar");
        WriteTar(tar, ("a.png", Png(Gray)), ("a.cls", "1"u8.ToArray()), ("b.png", Png(Gray)), ("b.cls", "0"u8.ToArray()));
        var bytes = File.ReadAllBytes(tar);
        // The second member's header checksum no longer matches.
        bytes[1024 + 2] ^= 0x55;
        File.WriteAllBytes(tar, bytes);

        var e = Assert.Throws<DataException>(() => Open(dir.Path));
        Assert.Contains("train-000000.tar", e.Message);
        Assert.Contains("corrupt (checksum mismatch)", e.Message);
    }

    [Fact]
    public void An_entry_type_the_tar_reader_does_not_support_should_be_a_data_error_naming_the_shard()
    {
        // Found by fuzzing (scripts/fuzz.sh tar): a GNU sparse-file header made System.Formats.Tar throw
        // NotSupportedException, which escaped as exit 1.
        var tar = dir.File("train-000000.tar");
        WriteTar(tar, ("a.png", Png(Gray)), ("a.cls", "1"u8.ToArray()));
        var bytes = File.ReadAllBytes(tar);
        bytes[156] = (byte)'S';
        var sum = 0;
        for (int i = 0; i < 512; i++) sum += i is >= 148 and < 156 ? 32 : bytes[i];
        Encoding.ASCII.GetBytes(Convert.ToString(sum, 8).PadLeft(6, '0') + "\0 ").CopyTo(bytes, 148);
        File.WriteAllBytes(tar, bytes);

        var e = Assert.Throws<DataException>(() => Open(dir.Path));
        Assert.Contains("train-000000.tar", e.Message);
        Assert.Contains("corrupt", e.Message);
    }

    [Fact]
    public void A_fuzzed_shard_with_an_oversized_extended_header_should_be_a_data_error_naming_the_shard()
    {
        // The 1,037-byte input afl++ found (scripts/fuzz.sh tar): System.Formats.Tar threw InvalidOperationException.
        var compressed = Convert.FromBase64String("eNrT0w9IrPBITUxJLSrWMzExstDXY6A2MAACMxMTMA0EcNoIyjAwNUNTb25mbs5gns5AB1BaXJJYBLSSKMWMDMMCGFooFCSWZNgm6gMDX68gL53LyEIhtyQzN9XW0NzSzNTcwNjcWM/E1NTEzMSMa8h46/9P0vXw0cAdvHhl9w7eAAQAPYIeoQ==");
        using var inflate = new System.IO.Compression.ZLibStream(new MemoryStream(compressed), System.IO.Compression.CompressionMode.Decompress);
        using var bytes = new MemoryStream();
        inflate.CopyTo(bytes);
        File.WriteAllBytes(dir.File("train-000000.tar"), bytes.ToArray());

        var e = Assert.Throws<DataException>(() => Open(dir.Path));
        Assert.Contains("train-000000.tar", e.Message);
    }

    [Fact]
    public void A_missing_label_should_fail_naming_shard_and_key_or_be_skipped_and_counted()
    {
        WriteTar(dir.File("train-000000.tar"), ("a.png", Png(Gray)), ("a.cls", "1"u8.ToArray()), ("b.png", Png(Gray)), ("c.png", Png(Gray)), ("c.cls", "0"u8.ToArray()));

        var e = Assert.Throws<DataException>(() => Open(dir.Path));
        Assert.Contains("train-000000.tar", e.Message);
        Assert.Contains("'b'", e.Message);
        Assert.Contains("no .cls label", e.Message);

        using var skipped = Open(dir.Path, onBad: BadFilePolicy.Skip);
        Assert.Equal(2, skipped.Count);
        Assert.Equal(["a", "c"], [skipped.Key(0), skipped.Key(1)]);
        Assert.Single(skipped.SkippedSamples, s => s.Contains(":b ", StringComparison.Ordinal));
    }

    [Fact]
    public void An_undecodable_image_should_fail_when_read_naming_shard_and_key_or_be_skipped_at_open()
    {
        WriteTar(dir.File("train-000000.tar"), ("a.png", Png(Gray)), ("bad.jpg", "not a jpeg"u8.ToArray()), ("c.png", Png(Gray)));

        using var failing = Open(dir.Path);
        var e = Assert.Throws<DataException>(() => failing.CopyImage(1, new float[Gray.Pixels]));
        Assert.Contains("train-000000.tar", e.Message);
        Assert.Contains("'bad'", e.Message);

        using var skipped = Open(dir.Path, onBad: BadFilePolicy.Skip);
        Assert.Equal(2, skipped.Count);
        Assert.Single(skipped.SkippedSamples);
    }

    [Fact]
    public void A_decompression_bomb_should_be_refused_from_its_header_before_decoding()
    {
        var bomb = PngBomb(60_000, 60_000);
        WriteTar(dir.File("train-000000.tar"), ("bomb.png", bomb));
        using var shards = Open(dir.Path);

        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<DataException>(() => shards.CopyImage(0, new float[Gray.Pixels]));
        Assert.Contains("60000x60000", e.Message);
        Assert.Contains("'bomb'", e.Message);
        // 3.6 gigapixels were never allocated (the budget check reads the header only).
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 1 << 20);
        Assert.Equal(DecodeFailure.TooManyPixels, ImageDecoder.TryDecode(bomb, Gray, new byte[Gray.Pixels], ImageDecoder.DefaultMaxPixels, out var header));
        Assert.Equal(new ImageHeader(60_000, 60_000), header);
    }

    [Fact]
    public void A_truncated_shard_should_be_an_error_naming_the_sample()
    {
        var tar = dir.File("train-000000.tar");
        WriteTar(tar, ("a.png", Png(Gray)), ("b.png", new byte[5000]));
        var bytes = File.ReadAllBytes(tar);
        File.WriteAllBytes(tar, bytes[..2048]);

        var e = Assert.Throws<DataException>(() => Open(dir.Path));
        Assert.Contains("train-000000.tar", e.Message);
    }

    [Fact]
    public void A_stale_index_sidecar_should_be_ignored_and_the_shard_scanned()
    {
        Pack(new ByteDataset(10, Gray));
        File.Delete(dir.File(ShardManifest.FileName));
        File.WriteAllText(dir.File("train-000000.tar" + ShardIndex.Suffix), "# dnm-shard-index 1 bytes=12 samples=0\n");

        using var shards = Open(dir.Path);
        Assert.Equal(10, shards.Count);
    }

    [Fact]
    public void A_rank_should_read_only_the_samples_of_its_micro_batches()
    {
        Pack(new ByteDataset(256, new ImageShape(1, 16, 16)), shardBytes: 64 * 1024);
        using var shards = Open(dir.Path);
        long opened = shards.BytesRead;
        var order = ShardSampler.EpochOrder(shards.Count, 5, 0);
        var batches = new Dnm.Core.Training.MicroBatches(16);
        var pixels = new float[64 * shards.Shape.Pixels];
        var labels = new int[64];
        for (int step = 0; step < ShardSampler.StepsPerEpoch(shards.Count, 64); step++)
        {
            var global = ShardSampler.GlobalBatch(order, step, 64);
            var (start, length) = batches.SampleRange(global.Length, rank: 0, worldSize: 2);
            BatchBuffer.Pack(shards, global.Slice(start, length), pixels, labels);
        }
        long total = Enumerable.Range(0, shards.Count).Sum(i => (long)ImageBytes(shards, i));
        // Rank 0 of 2 read half the epoch's image bytes: its own samples and nothing else.
        Assert.InRange(shards.BytesRead - opened, total * 0.4, total * 0.6);
    }

    private static int ImageBytes(ShardDataset shards, int i) => shards.EncodedLength(i);

    internal static byte[] Png(ImageShape shape, byte value = 128)
    {
        using var bitmap = new SkiaSharp.SKBitmap(shape.Width, shape.Height, SkiaSharp.SKColorType.Gray8, SkiaSharp.SKAlphaType.Opaque);
        bitmap.Erase(new SkiaSharp.SKColor(value, value, value));
        using var data = bitmap.Encode(SkiaSharp.SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }

    internal static void WriteTar(string path, params (string Name, byte[] Data)[] members)
    {
        using var file = File.Create(path);
        using var tar = new TarWriter(file, TarEntryFormat.Ustar);
        foreach (var (name, data) in members)
            tar.WriteEntry(new UstarTarEntry(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(data) });
    }

    /// <summary>A valid PNG signature and IHDR that declare <paramref name="width"/>×<paramref name="height"/>, and one tiny IDAT: a few hundred bytes.</summary>
    internal static byte[] PngBomb(int width, int height)
    {
        var png = new MemoryStream();
        png.Write([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]);
        var ihdr = new byte[13];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(ihdr, width);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), height);
        (ihdr[8], ihdr[9], ihdr[10], ihdr[11], ihdr[12]) = (8, 0, 0, 0, 0);
        Chunk(png, "IHDR", ihdr);
        Chunk(png, "IDAT", [0x78, 0x9C, 0x63, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01]);
        Chunk(png, "IEND", []);
        return png.ToArray();
    }

    private static void Chunk(Stream png, string type, byte[] data)
    {
        var header = new byte[4];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(header, data.Length);
        png.Write(header);
        var typed = Encoding.ASCII.GetBytes(type).Concat(data).ToArray();
        png.Write(typed);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(header, Crc32(typed));
        png.Write(header);
    }

    private static uint Crc32(byte[] data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (var b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320 : crc >> 1;
        }
        return ~crc;
    }
}
