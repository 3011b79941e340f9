//! Flattens `[batch, h, w, c]` into `[batch, h*w*c]` (channels-last order, as Keras).

use super::build::Builder;
use super::layer::{Context, Layer, LayerKind};
use super::tensor::{Tensor, data, data_mut, ensure_shape};

pub(crate) struct Flatten {
    name: String,
    out_shape: [usize; 1],
}

impl Flatten {
    pub(crate) fn new(name: &str, input_shape: &[usize]) -> Flatten {
        Flatten {
            name: name.to_string(),
            out_shape: [input_shape.iter().product()],
        }
    }
}

impl Flatten {
    pub(super) fn build(b: &mut Builder) -> Flatten {
        let name = b.name("flatten");
        Flatten::new(&name, &b.shape)
    }
}

impl Layer for Flatten {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> LayerKind {
        LayerKind::Flatten
    }

    fn output_shape(&self) -> &[usize] {
        &self.out_shape
    }

    fn forward(&mut self, x: &Tensor, y: &mut Tensor, _ctx: &Context) {
        ensure_shape(y, &[x.shape()[0], self.out_shape[0]]);
        data_mut(y).copy_from_slice(data(x));
    }

    fn identity_at_inference(&self) -> bool {
        true
    }

    fn backward(&mut self, x: &Tensor, _y: &Tensor, dy: &Tensor, dx: Option<&mut Tensor>) {
        if let Some(dx) = dx {
            ensure_shape(dx, x.shape());
            data_mut(dx).copy_from_slice(data(dy));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck::check_layer;

    #[test]
    fn gradients_match_finite_differences() {
        check_layer(&mut Flatten::new("flatten1", &[3, 2, 2]), &[2, 3, 2, 2]);
    }
}
