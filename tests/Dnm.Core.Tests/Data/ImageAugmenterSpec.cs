using Dnm.Core.Data;

namespace Dnm.Core.Tests.Data;

public sealed class ImageAugmenterSpec
{
    private static readonly ImageShape Five = new(1, 5, 5);

    private static float[] Dot(int x, int y, ImageShape shape)
    {
        var image = new float[shape.Pixels];
        image[y * shape.Width + x] = 1f;
        return image;
    }

    [Fact]
    public void Disabled_augmenter_should_leave_images_untouched()
    {
        var augmenter = new ImageAugmenter(Five, 0, 0, seed: 1);
        var image = Dot(1, 3, Five);
        augmenter.Apply(image, [7], dataEpoch: 2);
        Assert.False(augmenter.Enabled);
        Assert.Equal(Dot(1, 3, Five), image);
    }

    [Fact]
    public void Whole_pixel_shift_should_move_every_pixel_and_fill_zeros()
    {
        var augmenter = new ImageAugmenter(Five, 0, 0.5, seed: 1);
        var image = Dot(1, 3, Five);
        augmenter.Warp(image, new ImageAugmenter.Transform(0, ShiftX: 2, ShiftY: -1));
        Assert.Equal(Dot(3, 2, Five), image);

        // A dot shifted off the image leaves nothing behind.
        var edge = Dot(4, 0, Five);
        augmenter.Warp(edge, new ImageAugmenter.Transform(0, ShiftX: 1, ShiftY: 0));
        Assert.All(edge, v => Assert.Equal(0f, v));
    }

    [Fact]
    public void Quarter_turn_should_rotate_about_the_centre()
    {
        // Centre (2, 2); the dot 2 px right of it turns by +90° to 2 px below it (y grows downwards).
        var augmenter = new ImageAugmenter(Five, 90, 0, seed: 1);
        var image = Dot(4, 2, Five);
        augmenter.Warp(image, new ImageAugmenter.Transform(Math.PI / 2, 0, 0));
        var expected = Dot(2, 4, Five);
        for (var i = 0; i < image.Length; i++)
            Assert.Equal(expected[i], image[i], 1e-6f);
    }

    [Fact]
    public void Half_pixel_shift_should_split_a_dot_bilinearly()
    {
        var augmenter = new ImageAugmenter(Five, 0, 0.5, seed: 1);
        var image = Dot(2, 2, Five);
        augmenter.Warp(image, new ImageAugmenter.Transform(0, ShiftX: 0.5, ShiftY: 0));
        Assert.Equal(0.5f, image[2 * 5 + 2], 1e-6f);
        Assert.Equal(0.5f, image[2 * 5 + 3], 1e-6f);
        Assert.Equal(1f, image.Sum(), 1e-6f);
    }

    [Fact]
    public void Every_channel_should_get_the_same_transform()
    {
        var rgb = new ImageShape(3, 5, 5);
        var augmenter = new ImageAugmenter(rgb, 0, 0.5, seed: 1);
        var image = new float[rgb.Pixels];
        for (var c = 0; c < 3; c++) image[c * 25 + 2 * 5 + 1] = c + 1;
        augmenter.Warp(image, new ImageAugmenter.Transform(0, ShiftX: 1, ShiftY: 1));
        for (var c = 0; c < 3; c++)
        {
            Assert.Equal(c + 1, image[c * 25 + 3 * 5 + 2]);
            Assert.Equal(c + 1, image.AsSpan(c * 25, 25).ToArray().Sum());
        }
    }

    [Fact]
    public void Transforms_should_be_a_function_of_seed_epoch_and_index_within_the_ranges()
    {
        var shape = new ImageShape(1, 28, 28);
        var augmenter = new ImageAugmenter(shape, 10, 0.1, seed: 3);
        Assert.Equal(augmenter.For(2, 17), new ImageAugmenter(shape, 10, 0.1, seed: 3).For(2, 17));
        Assert.NotEqual(augmenter.For(2, 17), augmenter.For(2, 18));
        Assert.NotEqual(augmenter.For(2, 17), augmenter.For(3, 17));
        Assert.NotEqual(augmenter.For(2, 17), new ImageAugmenter(shape, 10, 0.1, seed: 4).For(2, 17));

        var draws = Enumerable.Range(0, 2000).Select(i => augmenter.For(0, i)).ToList();
        Assert.All(draws, t =>
        {
            Assert.InRange(t.Radians, -10 * Math.PI / 180, 10 * Math.PI / 180);
            Assert.InRange(t.ShiftX, -2.8, 2.8);
            Assert.InRange(t.ShiftY, -2.8, 2.8);
        });
        // Spread over the whole range, roughly uniform: both signs and both ends are reached.
        Assert.True(draws.Min(t => t.ShiftX) < -2.6 && draws.Max(t => t.ShiftX) > 2.6);
        Assert.InRange(draws.Average(t => t.Radians), -0.01, 0.01);
    }

    [Fact]
    public void A_batch_should_be_augmented_the_same_however_it_is_sharded()
    {
        // What keeps N workers equal to one process: a sample's transform does not depend on its batch.
        var shape = new ImageShape(1, 28, 28);
        var rng = new Random(5);
        var images = new float[6 * shape.Pixels];
        for (var i = 0; i < images.Length; i++) images[i] = (float)rng.NextDouble();
        int[] indices = [40, 3, 17, 59, 8, 21];

        var whole = (float[])images.Clone();
        new ImageAugmenter(shape, 15, 0.1, seed: 9).Apply(whole, indices, dataEpoch: 4);
        var halves = (float[])images.Clone();
        var shardA = new ImageAugmenter(shape, 15, 0.1, seed: 9);
        var shardB = new ImageAugmenter(shape, 15, 0.1, seed: 9);
        shardA.Apply(halves.AsSpan(0, 3 * shape.Pixels), indices.AsSpan(0, 3), dataEpoch: 4);
        shardB.Apply(halves.AsSpan(3 * shape.Pixels), indices.AsSpan(3), dataEpoch: 4);

        Assert.Equal(whole, halves);
        Assert.NotEqual(images, whole);
    }

    [Fact]
    public void A_batch_spread_over_the_cores_should_equal_its_images_warped_one_at_a_time()
    {
        // Apply splits a batch over the cores, each part with its own scratch memory: the floats must not change.
        var shape = new ImageShape(3, 16, 16);
        var rng = new Random(11);
        var images = new float[9 * shape.Pixels];
        for (var i = 0; i < images.Length; i++) images[i] = (float)rng.NextDouble();
        int[] indices = [4, 90, 13, 7, 55, 31, 2, 68, 19];

        var batch = (float[])images.Clone();
        new ImageAugmenter(shape, 20, 0.2, seed: 6).Apply(batch, indices, dataEpoch: 1);
        var single = (float[])images.Clone();
        var one = new ImageAugmenter(shape, 20, 0.2, seed: 6);
        for (var i = 0; i < indices.Length; i++)
            one.Warp(single.AsSpan(i * shape.Pixels, shape.Pixels), one.For(1, indices[i]));

        Assert.Equal(single, batch);
        Assert.NotEqual(images, batch);
    }

    [Fact]
    public void Bad_ranges_and_lengths_should_be_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new ImageAugmenter(Five, -1, 0, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ImageAugmenter(Five, 0, 1, 0));
        var augmenter = new ImageAugmenter(Five, 5, 0, 0);
        Assert.Throws<ArgumentException>(() => augmenter.Apply(new float[24], [0], 0));
    }
}
