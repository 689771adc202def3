using Dnm.Core.Data;

namespace Dnm.Core.Tests.Data;

public sealed class BatchBufferSpec : IDisposable
{
    private readonly ScratchDirectory _dir = new();
    private readonly IdxDataset _data;

    public BatchBufferSpec()
    {
        // Image i is filled with the value 10·i, label i mod 3.
        string images = Idx.Write(_dir.File("images"), Idx.Images(6, 2, 2, p => (byte)(10 * (p / 4))));
        string labels = Idx.Write(_dir.File("labels"), Idx.Labels(0, 1, 2, 0, 1, 2));
        _data = IdxDataset.Open(images, labels);
    }

    public void Dispose()
    {
        _data.Dispose();
        _dir.Dispose();
    }

    [Fact]
    public void Should_pack_images_and_labels_in_index_order()
    {
        var buffer = new BatchBuffer(_data.Shape, capacity: 4);
        Assert.Equal(3, buffer.Fill(_data, [5, 0, 4]));

        Assert.Equal(3, buffer.Count);
        Assert.Equal([2, 0, 1], buffer.Labels[..3]);
        float[] expected = [.. Enumerable.Repeat(50 / 255f, 4), .. Enumerable.Repeat(0f, 4), .. Enumerable.Repeat(40 / 255f, 4)];
        Assert.Equal(expected, buffer.FilledPixels.ToArray());
    }

    [Fact]
    public void Should_reuse_the_same_arrays_across_fills()
    {
        var buffer = new BatchBuffer(_data.Shape, capacity: 2);
        float[] pixels = buffer.Pixels;
        buffer.Fill(_data, [1, 2]);
        buffer.Fill(_data, [3]);
        Assert.Same(pixels, buffer.Pixels);
        Assert.Equal(1, buffer.Count);
        Assert.Equal(30 / 255f, buffer.Pixels[0]);
    }

    [Fact]
    public void Should_pack_into_caller_owned_spans()
    {
        var pixels = new float[8];
        var labels = new int[2];
        BatchBuffer.Pack(_data, [2, 1], pixels, labels);
        Assert.Equal([2, 1], labels);
        Assert.Equal(20 / 255f, pixels[3]);
        Assert.Equal(10 / 255f, pixels[4]);
        Assert.Throws<ArgumentException>(() => BatchBuffer.Pack(_data, [2, 1], new float[7], labels));
    }

    [Fact]
    public void Should_reject_overflow_wrong_shape_and_bad_indices()
    {
        var buffer = new BatchBuffer(_data.Shape, capacity: 2);
        Assert.Throws<ArgumentException>(() => buffer.Fill(_data, [0, 1, 2]));
        Assert.Throws<ArgumentOutOfRangeException>(() => buffer.Fill(_data, [6]));
        Assert.Throws<ArgumentException>(() => new BatchBuffer(new ImageShape(1, 3, 3), 2).Fill(_data, [0]));
    }
}
